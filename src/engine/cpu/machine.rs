//! The machine a measurement ran on, for its record: `bench`, its `--json` and the
//! `cargo bench` harnesses name the CPU the same way.

/// The CPU model and the widest x86 SIMD it offers, for the record of a measurement: the
/// same code can run at 1.1× a reference on one CPU and 0.64× on another.
pub fn cpu_description() -> (String, String) {
    describe_cpu(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

/// [`cpu_description`] from `/proc/cpuinfo`'s text (its first processor). The model name
/// carries the family and model numbers where the file has them: a VM may name its CPU
/// only "AMD EPYC", which a Zen 3 with AVX2 (family 25, model 1) and a Zen 4 with AVX-512
/// (family 25, model 17) both show, and the two run these kernels at different speeds.
fn describe_cpu(info: &str) -> (String, String) {
    // The first processor's "key : value" lines ("model" and "model name" are two keys).
    let field = |key: &str| info.lines().take_while(|l| !l.trim().is_empty()).filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim() == key).map(|(_, v)| v.trim());
    let name = field("model name").filter(|n| !n.is_empty()).unwrap_or("unknown CPU");
    let model = match (field("cpu family").and_then(|f| f.parse::<u32>().ok()), field("model").and_then(|m| m.parse::<u32>().ok())) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name.to_string(),
    };
    let flags: Vec<&str> = field("flags").map_or(Vec::new(), |f| f.split_whitespace().collect());
    let has = |f: &str| flags.contains(&f);
    let isa = if has("avx512f") {
        let extra: Vec<&str> = ["avx512_vnni", "avx512_bf16"].into_iter().filter(|f| has(f)).collect();
        if extra.is_empty() { "AVX-512".to_string() } else { format!("AVX-512 ({})", extra.join(", ")) }
    } else if has("avx2") {
        "AVX2, no AVX-512".to_string()
    } else {
        "no AVX2".to_string()
    };
    (model, isa)
}

#[cfg(test)]
mod tests {
    use super::describe_cpu;

    #[test]
    fn cpu_description_names_family_model_and_isa() {
        // Shaped as /proc/cpuinfo: the lines of the 2-core Zen 3 VM (AVX2 only) that names
        // itself "AMD EPYC", then a second processor whose lines must not be read; a
        // Sapphire Rapids Xeon with AVX-512 VNNI and BF16.
        let zen3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n\nprocessor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: other\nflags\t\t: avx512f\n";
        assert_eq!(describe_cpu(zen3), ("AMD EPYC (family 25, model 1)".to_string(), "AVX2, no AVX-512".to_string()));
        let xeon = "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16\n";
        assert_eq!(describe_cpu(xeon), ("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (family 6, model 143)".to_string(), "AVX-512 (avx512_vnni, avx512_bf16)".to_string()));
        // Without the numbers (or the file) the name stands alone; nothing is invented, nor
        // taken from another processor's lines.
        assert_eq!(describe_cpu("model name\t: Some CPU\nflags\t: sse2\n\ncpu family\t: 6\nmodel\t: 1\nflags\t: avx2\n"), ("Some CPU".to_string(), "no AVX2".to_string()));
        assert_eq!(describe_cpu(""), ("unknown CPU".to_string(), "no AVX2".to_string()));
    }
}
