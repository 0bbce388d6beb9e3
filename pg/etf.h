/*
 * pg/etf.h - the subset of Erlang's external term format that refresh
 * successors use (ATTESTO-PG 2.2.5), and its mapping to portable JSON.
 *
 * AttestoPhoenix seals a successor as :erlang.term_to_binary(payload) and
 * binds the ciphertext to its rows with term_to_binary of a 6-tuple, so a
 * C node must write those bytes exactly as Erlang does and read what an
 * Elixir node wrote.  The subset (tag bytes in hex):
 *
 *   83        version, first byte of every encoding
 *   68 n      SMALL_TUPLE_EXT, arity n (u8)
 *   74 n:4    MAP_EXT, n key/value pairs (u32 BE)
 *   6D n:4    BINARY_EXT, n bytes (u32 BE)
 *   61 b      SMALL_INTEGER_EXT, 0..255
 *   62 i:4    INTEGER_EXT, signed 32-bit BE
 *   6E n s    SMALL_BIG_EXT, n magnitude bytes little-endian, sign s (0/1);
 *             only values in the signed 64-bit range
 *   6A        NIL_EXT, the empty list
 *   6C n:4    LIST_EXT, n elements then the tail, which must be 6A
 *   6B n:2    STRING_EXT, a list of n integers 0..255, one byte each
 *   77 n      SMALL_ATOM_UTF8_EXT (Erlang's default from OTP 26); decoding
 *             also takes 76 (ATOM_UTF8_EXT, u16), 64 (ATOM_EXT, u16) and
 *             73 (SMALL_ATOM_EXT, u8)
 *
 * Atoms: as values only nil, true and false; as map keys any name (Elixir
 * writes atom keys).  Map keys are atoms or binaries, never repeated.
 *
 * The encoder writes what term_to_binary/1 writes on OTP 26+: the smallest
 * integer form, atoms as 77, a non-empty list of at most 65535 integers
 * 0..255 as STRING_EXT, other lists as LIST_EXT, and the pairs of a map
 * sorted by key in Erlang's term order (atoms before binaries, atoms by
 * name, binaries bytewise), which is the order of Erlang's own maps up to
 * 32 keys.  Above 32 keys Erlang writes its hash order instead; readers
 * take any order, so only the bytes differ.
 *
 * The decoder is total: any input gives a term or ONCE_INVALID, never a
 * read outside the buffer.  It rejects trailing bytes, nesting deeper than
 * ONCE_ETF_MAX_DEPTH, lengths past the end, duplicate map keys, improper
 * lists, atoms that are not valid UTF-8 (Latin-1 forms: not ASCII) and
 * every tag outside the subset.  Its allocations are bounded by a small
 * multiple of the input length (every element costs at least one byte).
 */
#ifndef ONCE_PG_ETF_H
#define ONCE_PG_ETF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "oncestore.h"

/* Terms nested deeper than this (the outermost term is depth 1) are
 * refused by the decoder, the encoder and the JSON conversions alike, so
 * anything this side writes it can also read.  A STRING_EXT list is one
 * term: its bytes are not a level.  A successor payload spends two levels
 * above its claims (ONCE_PG_CLAIMS_MAX_DEPTH in pg/envelope.h). */
#define ONCE_ETF_MAX_DEPTH 64

enum once__etf_type {
	ONCE_ETF_INTEGER = 0, /* integer: int64 */
	ONCE_ETF_ATOM,        /* bytes/len: the name, UTF-8 */
	ONCE_ETF_BINARY,      /* bytes/len */
	ONCE_ETF_LIST,        /* items[n]; n == 0 is the empty list [] */
	ONCE_ETF_TUPLE,       /* items[n], n <= 255 */
	ONCE_ETF_MAP          /* items[2n]: key 0, value 0, key 1, value 1, ... */
};

/*
 * One term.  bytes are borrowed, never owned: a decoded term points into
 * the buffer it was decoded from, a term built for encoding points at the
 * caller's strings; both must outlive the term.  items is owned (malloc'd)
 * and freed by once__etf_free.
 */
struct once__etf {
	enum once__etf_type type;
	int64_t integer;
	const unsigned char *bytes;
	size_t len;
	struct once__etf *items;
	size_t n; /* elements; for a map, pairs (items holds 2n terms) */
};

/* ---- building terms (values are borrowed; see struct once__etf) ---- */

void once__etf_integer(struct once__etf *t, int64_t v);
void once__etf_binary(struct once__etf *t, const void *bytes, size_t len);
/* A binary holding the C string s (without its NUL). */
void once__etf_string(struct once__etf *t, const char *s);
/* An atom named by the C string name: "nil", "true", "false", or a key. */
void once__etf_atom(struct once__etf *t, const char *name);
/* A list or tuple of n zeroed items, or a map of n zeroed pairs, for the
 * caller to fill.  false on NOMEM (t is then an empty list: freeable). */
bool once__etf_list(struct once__etf *t, size_t n);
bool once__etf_tuple(struct once__etf *t, size_t n);
bool once__etf_map(struct once__etf *t, size_t n);
/* Frees what t owns (its items, recursively), not t itself, and leaves t an
 * empty list.  Safe on a zeroed or partly built term. */
void once__etf_free(struct once__etf *t);

/* true when t is the atom called name. */
bool once__etf_is_atom(const struct once__etf *t, const char *name);
/* RFC 3629 UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), as Erlang demands of atom names and JSON of strings. */
bool once__etf_utf8_valid(const uint8_t *s, size_t n);

/* ---- encoding and decoding ---- */

/*
 * term_to_binary(t): *out (malloc'd) and *len receive the bytes, version
 * byte first.  ONCE_INVALID when t cannot be written in the subset: an
 * atom name over 255 bytes, a map key that is neither atom nor binary, a
 * repeated key, a tuple over 255 items, a length over 2^32-1, nesting over
 * ONCE_ETF_MAX_DEPTH; ONCE_NOMEM.  *out untouched on failure.
 */
once_status once__etf_encode(const struct once__etf *t, unsigned char **out, size_t *len);

/*
 * binary_to_term(buf, [safe]) restricted to the subset: *out receives the
 * term (free with once__etf_free), whose binaries and atom names point
 * into buf.  ONCE_INVALID for anything that is not exactly one term of the
 * subset (see the top of this file); ONCE_NOMEM.  *out untouched on
 * failure.  A single (buffer, length) call, as a fuzzer wants it.
 */
once_status once__etf_decode(const uint8_t *buf, size_t len, struct once__etf *out);

/* ---- portable JSON (pg/etf_json.c) ----
 *
 * How Elixir's Jason and Ecto hand claims to term_to_binary: null <-> nil,
 * true/false <-> the atoms, strings <-> binaries, integers <-> integers,
 * arrays <-> lists (a list of small integers travels as STRING_EXT and
 * comes back as a list), objects <-> maps with binary keys.  Floats have no
 * mapping (claims are portable JSON, ATTESTO-PG 2.1).
 */

/* A term for j, borrowing j's strings (j must outlive *out).  ONCE_INVALID
 * for a real number or nesting over ONCE_ETF_MAX_DEPTH; ONCE_NOMEM.  On
 * failure *out is left an empty list (freeable). */
once_status once__etf_from_json(const json_t *j, struct once__etf *out);

/* The JSON value of t (*out: a new reference).  ONCE_INVALID for a tuple,
 * an atom other than nil/true/false, a map key that is not a binary, or a
 * binary (value or key) that is not valid UTF-8 or holds a NUL; ONCE_NOMEM.
 * *out untouched on failure. */
once_status once__etf_to_json(const struct once__etf *t, json_t **out);

#endif /* ONCE_PG_ETF_H */
