//! The model's tokenizer: a `tokenizer.json` when one sits next to the model, otherwise
//! rebuilt from the GGUF metadata (`tokenizer.ggml.*`): byte-level BPE (`gpt2`: SmolLM2,
//! Qwen, Llama 3) or SentencePiece (`llama`: Gemma, Llama 2).
//!
//! Two encoders are kept: one that recognises special-token strings (used only for text
//! produced by the chat template) and one that treats them as plain text (used for anything
//! a user or a model wrote), so `<|im_end|>` typed in a prompt never becomes a control token.
//! That holds for GGUF's user-defined tokens (type 4, e.g. Qwen3's `<think>`) too: they are
//! registered like control tokens, so only the template ever inserts them.

use super::EngineError;
use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// Pre-tokenizer regexes of the BPE families llama.cpp names in `tokenizer.ggml.pre`.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Clone)]
pub struct TextTokenizer {
    with_special: Tokenizer,
    plain: Tokenizer,
    /// Token ids of control (type 3) and user-defined (type 4) tokens, by their text.
    pub special: HashMap<String, u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
}

impl TextTokenizer {
    pub fn from_tokenizer(tok: Tokenizer) -> Self {
        let special: HashMap<String, u32> = tok
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (t.content.clone(), *id))
            .collect();
        let mut plain = tok.clone();
        plain.set_encode_special_tokens(true);
        Self { with_special: tok, plain, special, bos: None, eos: None, add_bos: false }
    }

    /// The tokenizer as `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String, EngineError> {
        self.with_special.to_string(false).map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Loads `tokenizer.json` from a file.
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        let tok = Tokenizer::from_file(path).map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self::from_tokenizer(tok))
    }

    /// Rebuilds the tokenizer llama.cpp would use from GGUF metadata.
    pub fn from_gguf(ct: &Content) -> Result<Self, EngineError> {
        let md = &ct.metadata;
        let get_str = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
        let get_u32 = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        let model = get_str("tokenizer.ggml.model").ok_or_else(|| EngineError::Tokenizer("GGUF has no tokenizer.ggml.model; put a tokenizer.json next to the model".into()))?;
        if model != "gpt2" && model != "llama" {
            return Err(EngineError::Tokenizer(format!(
                "tokenizer type '{model}' is not supported from GGUF metadata (byte-level BPE 'gpt2' and SentencePiece 'llama' are); put the model's tokenizer.json next to the .gguf file"
            )));
        }
        let tokens = string_array(md.get("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(EngineError::Tokenizer(format!("GGUF metadata has {} token types for {} tokens", types.len(), tokens.len())));
        }
        let mut out = if model == "llama" {
            let scores: Vec<f32> = match md.get("tokenizer.ggml.scores") {
                Some(Value::Array(a)) => a.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
                _ => return Err(EngineError::Tokenizer("GGUF metadata lacks tokenizer.ggml.scores, which a SentencePiece vocabulary needs".into())),
            };
            let space_prefix = md.get("tokenizer.ggml.add_space_prefix").and_then(|v| v.to_bool().ok()).unwrap_or(true);
            Self::from_tokenizer(super::spm::tokenizer(&tokens, &scores, &types, space_prefix)?)
        } else {
            Self::from_tokenizer(byte_level_bpe(md, &tokens, &types)?)
        };
        out.bos = get_u32("tokenizer.ggml.bos_token_id");
        out.eos = get_u32("tokenizer.ggml.eos_token_id");
        out.add_bos = md.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false);
        Ok(out)
    }
    /// Encodes text as plain text: special-token strings stay ordinary characters.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        encode(&self.plain, text)
    }

    /// Encodes template-produced text, where special-token strings become control tokens.
    pub fn encode_template(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        encode(&self.with_special, text)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.plain.decode(ids, false).map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    pub fn vocab_size(&self) -> usize {
        self.plain.get_vocab_size(true)
    }

    pub fn id_of(&self, token: &str) -> Option<u32> {
        self.plain.token_to_id(token)
    }

    /// Ids of the tokens whose decoded text contains `c` (special tokens included), in
    /// order. Decoded one by one, so a byte-fallback piece like `<0x0A>` counts by the
    /// byte it stands for, not by its name.
    pub fn ids_whose_text_has(&self, c: char) -> Vec<u32> {
        (0..self.vocab_size() as u32).filter(|&id| self.decode(&[id]).is_ok_and(|t| t.contains(c))).collect()
    }
}

/// Byte-level BPE (`gpt2`) from its vocabulary, merges and pre-tokenizer name.
fn byte_level_bpe(md: &HashMap<String, Value>, tokens: &[String], types: &[i32]) -> Result<Tokenizer, EngineError> {
    let merges_raw = string_array(md.get("tokenizer.ggml.merges"), "tokenizer.ggml.merges")?;
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let mut merges = Vec::with_capacity(merges_raw.len());
    for m in &merges_raw {
        let (a, b) = m.split_once(' ').ok_or_else(|| EngineError::Tokenizer(format!("malformed merge '{m}' in GGUF metadata")))?;
        merges.push((a.to_string(), b.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| EngineError::Tokenizer(format!("cannot build BPE from GGUF metadata: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let pre = md.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned().unwrap_or_else(|| "default".into());
    tok.with_pre_tokenizer(Some(pre_tokenizer(&pre)?));
    tok.with_decoder(Some(ByteLevel::default()));
    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(_, &t)| t == 3 || t == 4)
        // Special, both: the plain encoder then leaves their text alone.
        .map(|(s, _)| AddedToken::from(s.clone(), true))
        .collect();
    tok.add_special_tokens(added).map_err(|e| EngineError::Tokenizer(format!("cannot register special tokens: {e}")))?;
    Ok(tok)
}

fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, EngineError> {
    Ok(tok.encode_fast(text, false).map_err(|e| EngineError::Tokenizer(e.to_string()))?.get_ids().to_vec())
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, EngineError> {
    let split = |pat: &str| -> Result<PreTokenizerWrapper, EngineError> {
        let s = Split::new(SplitPattern::Regex(pat.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(Sequence::new(vec![s.into(), ByteLevel::new(false, false, false).into()]).into())
    };
    match pre {
        // SmolLM / StarCoder family: every digit on its own, then GPT-2's byte-level regex.
        "smollm" | "starcoder" | "refact" => Ok(Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into()),
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_PATTERN),
        "llama-bpe" | "llama3" | "smaug-bpe" => split(LLAMA3_PATTERN),
        "default" | "gpt-2" | "gpt2" => Ok(ByteLevel::new(false, true, true).into()),
        other => Err(EngineError::Tokenizer(format!(
            "unknown pre-tokenizer '{other}' in GGUF metadata; put the model's tokenizer.json next to the .gguf file"
        ))),
    }
}

fn string_array(v: Option<&Value>, key: &str) -> Result<Vec<String>, EngineError> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.to_string().cloned().map_err(|_| EngineError::Tokenizer(format!("{key} holds a non-string"))))
            .collect(),
        _ => Err(EngineError::Tokenizer(format!("GGUF metadata lacks {key}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file;

    /// A GGUF header with a byte-level vocabulary, one user-defined token and one control
    /// token.
    fn tiny() -> (TextTokenizer, u32, u32) {
        let mut tokens: Vec<String> = ByteLevel::alphabet().into_iter().map(|c| c.to_string()).collect();
        tokens.sort();
        let (think, im_end) = (tokens.len() as u32, tokens.len() as u32 + 1);
        let mut types = vec![1i32; tokens.len()];
        tokens.extend(["<think>".to_string(), "<|im_end|>".to_string()]);
        types.extend([4, 3]);
        let md = [
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", Value::Array(tokens.into_iter().map(Value::String).collect())),
            ("tokenizer.ggml.merges", Value::Array(Vec::new())),
            ("tokenizer.ggml.token_type", Value::Array(types.into_iter().map(Value::I32).collect())),
        ];
        let refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let mut bytes = std::io::Cursor::new(Vec::new());
        gguf_file::write(&mut bytes, &refs, &[]).unwrap();
        let ct = Content::read(&mut std::io::Cursor::new(bytes.into_inner())).unwrap();
        (TextTokenizer::from_gguf(&ct).unwrap(), think, im_end)
    }

    #[test]
    fn user_defined_tokens_typed_by_a_user_encode_as_plain_text() {
        let (tok, think, im_end) = tiny();
        for text in ["a <think> b", "x<|im_end|>y"] {
            let ids = tok.encode_plain(text).unwrap();
            assert!(!ids.contains(&think) && !ids.contains(&im_end), "{text}: {ids:?}");
            assert_eq!(tok.decode(&ids).unwrap(), text);
        }
        // The template's own text still gets the real tokens, and they decode as written.
        assert_eq!(tok.encode_template("<think>").unwrap(), vec![think]);
        assert_eq!(tok.encode_template("<|im_end|>").unwrap(), vec![im_end]);
        assert_eq!(tok.decode(&[think]).unwrap(), "<think>");
        assert_eq!((tok.special.get("<think>"), tok.special.get("<|im_end|>")), (Some(&think), Some(&im_end)));
    }
}
