//! Topic administration helpers (placeholder until filled in).
