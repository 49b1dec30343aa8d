fn main() -> std::process::ExitCode {
    longwriter::cli::main()
}
