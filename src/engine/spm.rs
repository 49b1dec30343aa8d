//! A SentencePiece vocabulary from GGUF metadata (`tokenizer.ggml.model = "llama"`: Gemma,
//! Llama 2), encoded as llama.cpp encodes it.
//!
//! llama.cpp's SentencePiece encoder turns spaces into "▁", starts from single characters,
//! and repeatedly merges the adjacent pair whose joined text is the vocabulary piece with
//! the highest score; characters the vocabulary lacks are spelled as `<0xXX>` byte tokens.
//! That is BPE whose merge ranks follow the pieces' scores, so it runs here on the
//! `tokenizers` crate's BPE with merges derived from the scores (as Hugging Face's own
//! SentencePiece converter derives them), byte fallback on, no pre-splitting.
//!
//! Control tokens (type 3) only ever come from templates, as for every vocabulary here.
//! User-defined tokens (type 4; in Gemma runs of spaces, newlines and tabs, and HTML tags)
//! are matched in any text, in the raw text before spaces become "▁", as llama.cpp splits
//! them out even when it parses no special tokens: "\n" and "  " exist only as such
//! tokens there, so treating them as control text would spell every newline in bytes, and
//! matching them after the spaces are replaced would join "▁" typed by a user with spaces.

use super::EngineError;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::utils::Sequence as NormalizerSequence;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, Tokenizer};

/// GGUF token types (llama.cpp's `llama_token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The tokenizer for `tokens` with their `scores` and `types`; `space_prefix` is GGUF's
/// `add_space_prefix` (Llama 2 prepends "▁"; Gemma does not).
pub(super) fn tokenizer(tokens: &[String], scores: &[f32], types: &[i32], space_prefix: bool) -> Result<Tokenizer, EngineError> {
    if scores.len() != tokens.len() {
        return Err(EngineError::Tokenizer(format!("GGUF metadata has {} scores for {} tokens", scores.len(), tokens.len())));
    }
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    if vocab.len() != tokens.len() {
        return Err(EngineError::Tokenizer("GGUF metadata lists a token twice".into()));
    }
    let merges = merges(tokens, scores, types, &vocab);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .build()
        .map_err(|e| EngineError::Tokenizer(format!("cannot build the SentencePiece vocabulary from GGUF metadata: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let err = |e: tokenizers::Error| EngineError::Tokenizer(e.to_string());
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if space_prefix {
        norm.push(Prepend::new("▁".into()).into());
    }
    norm.push(Replace::new(" ", "▁").map_err(err)?.into());
    tok.with_normalizer(Some(NormalizerSequence::new(norm))).map_err(err)?;
    let mut dec: Vec<DecoderWrapper> = vec![Replace::new("▁", " ").map_err(err)?.into(), ByteFallback::new().into(), Fuse::new().into()];
    if space_prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(dec)));
    let of_type = |want: i32, special: bool| -> Vec<AddedToken> {
        tokens.iter().zip(types).filter(|(_, &t)| t == want).map(|(s, _)| AddedToken::from(s.clone(), special).normalized(false)).collect()
    };
    tok.add_special_tokens(of_type(CONTROL, true)).map_err(err)?;
    tok.add_tokens(of_type(USER_DEFINED, false)).map_err(err)?;
    Ok(tok)
}

/// Every way a normal piece splits into two pieces of the vocabulary, ranked by the piece's
/// score, highest first (ties by id, which is how the vocabulary lists them).
fn merges(tokens: &[String], scores: &[f32], types: &[i32], vocab: &tokenizers::models::bpe::Vocab) -> Vec<(String, String)> {
    let normal = |s: &str| vocab.get(s).is_some_and(|&i| types[i as usize] == NORMAL);
    let mut order: Vec<usize> = (0..tokens.len()).filter(|&i| types[i] == NORMAL && tokens[i].chars().nth(1).is_some()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut out = Vec::new();
    for i in order {
        let t = &tokens[i];
        for (at, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(at);
            if normal(l) && normal(r) {
                out.push((l.to_string(), r.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(pieces: &[(&str, f32, i32)], space_prefix: bool) -> Tokenizer {
        let tokens: Vec<String> = pieces.iter().map(|p| p.0.to_string()).collect();
        let scores: Vec<f32> = pieces.iter().map(|p| p.1).collect();
        let types: Vec<i32> = pieces.iter().map(|p| p.2).collect();
        tokenizer(&tokens, &scores, &types, space_prefix).unwrap()
    }

    fn ids(t: &Tokenizer, text: &str) -> Vec<u32> {
        t.encode_fast(text, false).unwrap().get_ids().to_vec()
    }

    /// The highest-scoring merge goes first, whatever the order of the text: "abc" with
    /// "bc" scoring above "ab" is a + bc, and with "ab" above, ab + c.
    #[test]
    fn pairs_merge_by_their_pieces_scores() {
        let base = [("<unk>", 0.0, 2), ("a", -1.0, 1), ("b", -1.0, 1), ("c", -1.0, 1)];
        let mut v = base.to_vec();
        v.extend([("ab", -3.0, 1), ("bc", -2.0, 1)]);
        assert_eq!(ids(&tok(&v, false), "abc"), [1, 5]);
        let mut v = base.to_vec();
        v.extend([("ab", -2.0, 1), ("bc", -3.0, 1)]);
        assert_eq!(ids(&tok(&v, false), "abc"), [4, 3]);
    }

    /// Spaces are "▁" (prefixed or not), missing characters are spelled in bytes, and
    /// decoding gives the text back.
    #[test]
    fn spaces_bytes_and_the_prefix() {
        let mut v: Vec<(String, f32, i32)> = [("<unk>", 0.0, 2), ("▁", -1.0, 1), ("h", -1.0, 1), ("i", -1.0, 1), ("▁hi", -2.0, 1), ("hi", -3.0, 1)].iter().map(|p| (p.0.to_string(), p.1, p.2)).collect();
        v.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0, 6)));
        let pieces: Vec<(&str, f32, i32)> = v.iter().map(|p| (p.0.as_str(), p.1, p.2)).collect();
        let t = tok(&pieces, false);
        assert_eq!(ids(&t, "hi hi"), [5, 4]);
        // "é" is two bytes, C3 A9, each a byte token (ids 6 + byte).
        assert_eq!(ids(&t, "hé"), [2, 6 + 0xC3, 6 + 0xA9]);
        assert_eq!(t.decode(&ids(&t, "hi hé hi"), false).unwrap(), "hi hé hi");
        let t = tok(&pieces, true);
        assert_eq!(ids(&t, "hi hi"), [4, 4]);
        assert_eq!(t.decode(&[4, 4], false).unwrap(), "hi hi");
    }

    /// A user-defined piece is found in any text; a control piece only by the template's
    /// encoder.
    #[test]
    fn user_defined_pieces_match_in_plain_text_and_control_pieces_do_not() {
        let t = tok(&[("<unk>", 0.0, 2), ("\n", 0.0, USER_DEFINED), ("<eos>", 0.0, CONTROL), ("a", -1.0, 1), ("<", -1.0, 1), (">", -1.0, 1), ("e", -1.0, 1), ("o", -1.0, 1), ("s", -1.0, 1)], false);
        let mut plain = t.clone();
        plain.set_encode_special_tokens(true);
        assert_eq!(ids(&plain, "a\na"), [3, 1, 3]);
        assert_eq!(ids(&plain, "<eos>"), [4, 6, 7, 8, 5]);
        assert_eq!(ids(&t, "<eos>"), [2]);
    }
}
