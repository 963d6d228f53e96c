//! Resource limits for untrusted programs and events.

/// Largest program source accepted, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest bracket/`where`/`else`/`of` nesting accepted by the parser.
pub(crate) const MAX_NESTING: usize = 32;
/// Deepest expression tree (including left-folded chains like `a + b + c`).
pub(crate) const MAX_EXPR_DEPTH: usize = 128;
/// pest's call limit for parsing a program: this many grammar-rule calls,
/// plus [`PARSER_CALLS_PER_BYTE`] per byte of source (a clean program needs
/// a few dozen per byte). Reaching a million calls takes pest about 10 ms.
pub(crate) const PARSER_CALLS_FLOOR: usize = 1_000_000;
/// See [`PARSER_CALLS_FLOOR`].
pub(crate) const PARSER_CALLS_PER_BYTE: usize = 1_000;
/// Most rules in one program.
pub(crate) const MAX_RULES: usize = 20_000;
/// Most list elements an event may carry in one field (e.g. basket items).
pub(crate) const MAX_LIST_LEN: usize = 10_000;
