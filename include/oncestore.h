/*
 * oncestore.h - the whole public API of oncestore.
 *
 * oncestore keeps the state of the single-use credentials of an OAuth 2.0 /
 * OpenID Connect gateway: authorization codes (with the access tokens minted
 * from them), rotating refresh-token families, DPoP server nonces and the
 * DPoP proof `jti` replay cache.  Everything lives in memory, in lock-free
 * RCU hash tables (liburcu cds_lfht) split into shards; single use is decided
 * by one compare-and-swap on the state word inside each table entry.
 *
 * Guarantees (numbered as in the product contract, SPEC.md section 1):
 *   1. Exactly one winner per key for take / consume / accept / replay check.
 *   2. Durable before acknowledged (with a data directory; see `dir`): with
 *      ONCE_SYNC_ALWAYS a write returns success only once its log record is
 *      on stable storage; concurrent writers share one fdatasync.  Recovery
 *      after kill -9 or power loss brings back every acknowledged write and
 *      never un-spends an acknowledged consume.  A write that crashed before
 *      it was acknowledged may come back either way.
 *   3. Fail closed: bad input is ONCE_INVALID and stores nothing; a full kind
 *      is ONCE_FULL and evicts nothing.  If the log cannot be written or
 *      synced, that call and every later write answer ONCE_IO until the
 *      store is reopened (the failed change stays in force in memory: a
 *      code that was being taken stays taken).  A corrupt log or snapshot
 *      fails once_open with ONCE_CORRUPT, naming file and offset.
 *   4. No secret at rest: codes and refresh tokens are keyed by the hash of
 *      the secret (see once_secret_hash), never the secret; refresh
 *      successors are sealed (XChaCha20-Poly1305) before they reach memory
 *      or disk; data files are 0600 in a 0700 directory.
 *   5. One owner per data directory (ONCE_LOCKED).
 *   6. Hostile keys: keys a client chooses (DPoP `jti`, presented nonces) are
 *      hashed with a keyed PRF (SipHash-2-4 under a random per-store key);
 *      keys the server generated use XXH3 under a random per-store seed.
 *      Keys longer than `max_key_len` are refused; memory is bounded by the
 *      per-kind capacities.
 *
 * Reads (get, valid, revoked?) may see a write whose record is not durable
 * yet (its writer has not returned); a crash can then make it vanish, which
 * is safe because its writer was never told it succeeded.
 *
 * Threads.  Every function may be called from any thread at any time between
 * once_open and once_close.  The host never calls an RCU function: oncestore
 * uses liburcu's "bulletproof" flavour (urcu-bp), which registers a thread
 * lazily on its first read-side section and unregisters it from a thread-exit
 * destructor.  Readers never take a lock.  Threads that oncestore starts (the
 * background sweeper, liburcu's call_rcu worker) run with every signal
 * blocked, so a host using signalfd/sigwait keeps its signals.  With a data
 * directory there are two more: the checkpointer, and the log writer
 * (which does every write and sync of the log, in every sync mode).  A
 * thread blocked in a write call (waiting for its record to be durable)
 * cannot be cancelled there: the wait is not a cancellation point.
 *
 * Processes.  One store protects one process.  A multi-process gateway (nginx
 * with several workers) or several machines need one shared store, or single
 * use silently becomes "once per worker"; see README.md.  After fork(), the
 * child must not use (or close) a store its parent opened: the store's
 * threads are not in the child, and its data directory stays locked by the
 * parent.  The child may open stores of its own.
 *
 * Keys are byte strings (const void *key, size_t key_len), 1..max_key_len
 * bytes.  Times are unix seconds (int64_t) from the store's clock.
 *
 * Times.  The store works with times in [ONCE_TIME_MIN, ONCE_TIME_MAX]
 * (1 .. 2^62: 1970 to beyond any real date, with room for "never"), so
 * that no clock reading, ttl or expiry can overflow its arithmetic:
 *   - an expires_at a caller gives (codes, refresh tokens, access tokens)
 *     must lie in the range: <= 0 or > ONCE_TIME_MAX is ONCE_INVALID;
 *   - a ttl (nonce issue and accept, replay check) must be 1 ..
 *     ONCE_TTL_MAX, else ONCE_INVALID; options.revocation_ttl 0 ..
 *     ONCE_TTL_MAX, else once_open answers ONCE_INVALID;
 *   - now + ttl saturates at ONCE_TIME_MAX: an expiry that would pass it
 *     is ONCE_TIME_MAX, which no clock in the range ever passes;
 *   - the clock (options.clock, or the real-time clock) is clamped into
 *     the range before any use: a reading before ONCE_TIME_MIN (before
 *     1970, negative) counts as ONCE_TIME_MIN, one after ONCE_TIME_MAX as
 *     ONCE_TIME_MAX.  Times the store records (inserted_at, consumed_at,
 *     issued_at, last_checkpoint_at) are such clamped readings.  A clock
 *     that is wrong makes expiry decisions wrong, as it would for a
 *     token's `exp`, but never leads to undefined behaviour or a hang,
 *     and a sweep after any jump of the clock visits each of its
 *     one-second slots at most once;
 *   - an expiry read back from a data directory (written by an older
 *     version that allowed more) is clamped into the range the same way.
 *
 * Records.  Record structs use NUL-terminated `const char *` text fields
 * (NULL = absent), `const char *const *name` + `size_t name_count` lists and
 * `const void *name` + `size_t name_len` opaque bytes.  Every record the API
 * returns is ONE heap block owned by the caller and released with
 * once_free(); its pointers point inside that block.  Out-pointers may be
 * NULL when the caller does not want the record; on any status that the
 * call's documentation does not name as filling them, out-pointers are left
 * untouched.
 *
 * Versions and ABI.  Before 1.0, a minor release (0.1 -> 0.2) may change
 * struct layouts and so break the ABI, and its soname changes with it: the
 * soname is liboncestore.so.0.MINOR (liboncestore.so.0.2 for every 0.2.x),
 * so a binary built against 0.1 never loads 0.2 by accident; patch
 * releases keep the ABI.  From 1.0 on the soname is liboncestore.so.MAJOR,
 * changed only by a release that breaks the ABI.  ONCE_VERSION_NUMBER is
 * the version of the header a program was compiled against; once_version()
 * that of the library it runs with.
 */
#ifndef ONCESTORE_H
#define ONCESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ONCE_API __attribute__((visibility("default")))
#else
#define ONCE_API
#endif

#define ONCE_VERSION_MAJOR 0
#define ONCE_VERSION_MINOR 3
#define ONCE_VERSION_PATCH 0
/* MAJOR * 1000000 + MINOR * 1000 + PATCH (0.3.0 is 3000), to compare with
 * once_version(). */
#define ONCE_VERSION_NUMBER (ONCE_VERSION_MAJOR * 1000000 + ONCE_VERSION_MINOR * 1000 + ONCE_VERSION_PATCH)

/* Length of a DPoP nonce and of a generated secret or secret hash: 32 bytes
 * in base64url without padding. Buffers need one more byte for the NUL. */
#define ONCE_NONCE_LEN 43
#define ONCE_SECRET_LEN 43

/* Size of options.successor_key. */
#define ONCE_SUCCESSOR_KEY_LEN 32

/* The range of times and the largest ttl, in seconds (see "Times" above). */
#define ONCE_TIME_MIN INT64_C(1)
#define ONCE_TIME_MAX (INT64_C(1) << 62)
#define ONCE_TTL_MAX ONCE_TIME_MAX

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

/*
 * X(NAME, message): the one table that generates both the enum and
 * once_strerror(), so the two cannot drift apart.  Values are 0, 1, 2, ...
 * in this order; ONCE_OK is 0.
 */
#define ONCE_STATUS_MAP(X)                                                                  \
	X(OK, "success")                                                                    \
	X(NOT_FOUND, "no live entry for this key")                                          \
	X(SPENT, "already used")                                                            \
	X(EXPIRED, "outside its freshness window")                                          \
	X(EXISTS, "key already present; stored record untouched")                           \
	X(REVOKED, "refresh-token family is revoked")                                       \
	X(INVALID, "invalid argument or record; nothing stored")                            \
	X(FULL, "capacity reached; nothing stored, nothing evicted")                        \
	X(NO_KEY, "no successor key configured")                                            \
	X(IO, "I/O failed (the log line names the call); after a failed log write, writes are refused until reopen") \
	X(CORRUPT, "data files fail verification")                                          \
	X(LOCKED, "data directory is held by another store")                                \
	X(NOMEM, "out of memory")

typedef enum once_status {
#define ONCE__STATUS_ENUM(name, msg) ONCE_##name,
	ONCE_STATUS_MAP(ONCE__STATUS_ENUM)
#undef ONCE__STATUS_ENUM
	ONCE_STATUS_COUNT /* number of statuses, not a status */
} once_status;

/* The library's version as ONCE_VERSION_NUMBER counts it (of the library
 * loaded at run time, which may be newer than the header compiled against:
 * same soname, later patch release). */
ONCE_API int once_version(void);

/* One-line description of a status; "unknown status" for values outside the
 * enum. The string is static. */
ONCE_API const char *once_strerror(once_status st);

/* The status's name without prefix ("OK", "NOT_FOUND", ...), or "UNKNOWN". */
ONCE_API const char *once_status_name(once_status st);

/* ------------------------------------------------------------------------ */
/* Options and lifecycle                                                    */
/* ------------------------------------------------------------------------ */

typedef struct once_store once_store;

typedef enum once_sync_mode {
	ONCE_SYNC_ALWAYS = 0, /* fdatasync before a write returns (group commit) */
	ONCE_SYNC_INTERVAL,   /* fdatasync every sync_interval_ms */
	ONCE_SYNC_NONE        /* leave syncing to the operating system */
} once_sync_mode;

typedef enum once_log_level {
	ONCE_LOG_ERROR = 0,
	ONCE_LOG_WARN,
	ONCE_LOG_INFO
} once_log_level;

/* Returns the current time in unix seconds. Called on every operation that
 * needs "now"; must be thread-safe. */
typedef int64_t (*once_clock_fn)(void *ctx);

/* Receives one line (no trailing newline) per event worth an operator's
 * attention. Called from the thread that detected the event; must be
 * thread-safe and must not call back into the store. */
typedef void (*once_log_fn)(void *ctx, once_log_level level, const char *message);

typedef struct once_options {
	/* Data directory, or NULL for a memory-only store (the default).
	 * Created (mode 0700) if absent; every file in it is 0600.  The store
	 * locks it (flock) while open: a second once_open of the same
	 * directory, in this process or another, gets ONCE_LOCKED (a
	 * read_only one, below, takes no lock and is never refused).  It holds
	 * FORMAT (version, store uid), log segments log-*, the committed
	 * checkpoint's snapshots snap-S-P-<shard> (S its start sequence, P
	 * its shard count: one per shard) and CHECKPOINT, which names them;
	 * any other snap-* or *.tmp file is a leftover of an interrupted
	 * checkpoint, never read, removed by the next open or checkpoint.
	 * Every write is one log record, appended after the in-memory change
	 * decided the winner and durable (per `sync`) before the call returns
	 * success; a multi-entry change (a rotation, a family revocation) is
	 * one record.  Secrets are never written: codes and tokens are keyed
	 * by their hashes, and a refresh successor is stored sealed. */
	const char *dir;
	/* true: open dir for inspection only (`oncestore stats`, `dump`,
	 * `verify`), even while a gateway holds it: no lock is taken and
	 * nothing in the directory is created, written, cut, removed or
	 * synced; no background thread runs (no log writer, checkpointer or
	 * sweeper).  A missing dir is ONCE_IO with errno ENOENT (nothing is
	 * made); an empty one (a store not created yet) is an empty store.
	 *
	 * What it holds ("consistent" with a live writer): a state the
	 * directory held while once_open read it, namely the committed
	 * checkpoint's snapshots plus every complete log record after the
	 * checkpoint's start, up to the last complete record of the newest
	 * segment.  Bytes after that record (a record the writer is still
	 * appending, or a crash's torn tail) are not read and are left in
	 * place; only a normal open cuts a torn tail.  So every write the
	 * writer had acknowledged before once_open began is there (a spent
	 * code reads as spent); writes acknowledged later may or may not be.
	 * The files are copied into memory as they are read (not mapped: the
	 * writer cuts files it leaves).  If a file vanishes or the directory
	 * changes while it is read (a checkpoint committed and removed the
	 * files it covers, a new segment began), or the newest segment reads
	 * as damaged, once_open discards that reading and reads everything
	 * again: up to 10 readings, with naps of 1 to 32 ms between them.
	 * Damage that stays while nothing changes is ONCE_CORRUPT, as for a
	 * normal open; a directory that kept changing through all 10 gets
	 * the last reading's status (ONCE_CORRUPT or ONCE_IO).
	 *
	 * The store is a picture and never changes: every write (and its
	 * _async form), once_checkpoint and once_sweep answer ONCE_INVALID
	 * with nothing changed and out-pointers untouched (counted in
	 * once_stats.ops; one warning line per store); no ticket is handed
	 * out (once_tickets_durable: 0; once_ticket_fd: -1).  Reads, dump and
	 * once_stats work (read_only is 1 there).  Requires dir: with no dir,
	 * or with postgres, once_open answers ONCE_INVALID. */
	bool read_only;
	/* How long once_open waits, in ms, for another store to release dir
	 * before answering ONCE_LOCKED.  0 (the default): not at all.  For a
	 * restart that runs the old and the new process side by side (an
	 * nginx reload or binary upgrade, an Envoy hot restart, systemd):
	 * the new process opens with, say, 5000 while the old one closes, and
	 * takes the directory over within 5 ms of that close. */
	uint32_t lock_wait_ms;
	/* Number of shards; 0 = the number of online CPUs rounded up to a power
	 * of two (at most 256).  At most 4096. */
	uint32_t shards;
	/* Durability of acknowledged writes (with a data directory).
	 *   ONCE_SYNC_ALWAYS: a write returns after its record is on stable
	 *     storage (fdatasync); concurrent writers share one fdatasync.
	 *   ONCE_SYNC_INTERVAL: a write returns once its record is written to
	 *     the kernel (so a process crash never loses it); a background
	 *     thread syncs every sync_interval_ms, so a power failure can lose
	 *     the writes of the last interval.
	 *   ONCE_SYNC_NONE: as INTERVAL, but syncing is left to the kernel
	 *     (and to checkpoints and once_close). */
	once_sync_mode sync;
	uint32_t sync_interval_ms; /* ONCE_SYNC_INTERVAL period; default 10 */
	/* The store keeps one log (not one per shard: README "Durability").
	 * When more than this many bytes were appended to it since the last
	 * checkpoint, and more than that checkpoint's snapshots held, a
	 * background thread checkpoints (once_checkpoint).  A checkpoint
	 * writes every live entry, so it waits for at least as many bytes of
	 * log as it writes: its cost per logged byte stays bounded however
	 * many entries are live, and disk use stays below twice the live data
	 * + checkpoint_bytes.  "Since the last checkpoint" counts from the
	 * start of the last one, explicit or automatic, that succeeded or
	 * failed: after a failure (a full disk) the next attempt waits for
	 * as many bytes again, and one that an explicit checkpoint made
	 * unnecessary while it waited is not written.  Default 64 MiB;
	 * UINT64_MAX: only explicit checkpoints. */
	uint64_t checkpoint_bytes;
	/* Most bytes of log records waiting in memory for the log writer
	 * thread (see "Non-blocking durable writes").  The writer drains the
	 * buffer whether or not anyone polls; a write that would take it past
	 * this waits until the writer has written enough (the disk is that
	 * far behind), so a host that never polls cannot make it grow.
	 * Default 64 MiB; at least 1 MiB (smaller values are raised to it). */
	uint64_t log_buffer_bytes;

	/* Capacity per kind: live entries (consumed ones count until swept).
	 * At capacity an insert gets ONCE_FULL; nothing is ever evicted.
	 * Capacity is a limit, not an allocation: the hash tables start with
	 * 16 buckets and are doubled by a background thread of the store
	 * (started when first needed, every signal blocked) while lookups and
	 * inserts go on, whenever a kind holds more than one entry per bucket,
	 * up to 0.5 to 1 bucket per unit of capacity (refresh tokens: more
	 * than one per two buckets, up to 1 to 2 per unit, so that a consume's
	 * lookup rarely passes another token); entries come from
	 * chunks of reserved address space, touched as they fill (past
	 * 64 MiB of them, on huge pages the store's thread faults in ahead:
	 * README, "Design notes").  So an empty store costs well under
	 * 1 MiB and opens and closes in about a millisecond, and memory
	 * follows the live entries.  A table does not shrink after a peak.  Refresh and access-token families have
	 * tables of their own, with room for twice the tokens' capacity (one
	 * family per token at most, plus revocation marks of families without
	 * tokens).  Defaults: 1 Mi each. */
	uint64_t max_codes;
	uint64_t max_access_tokens;
	uint64_t max_refresh;
	uint64_t max_nonces;
	uint64_t max_replays;

	/* true: every table is created at its full-capacity size at open (8 to
	 * 16 bytes per unit of capacity, 16 to 32 for refresh tokens, touched
	 * up front) and never grows,
	 * for a deployment that would rather pay memory, open and close time
	 * in proportion to capacity than have tables grow while it serves.
	 * Default false (tables grow with their contents, see above). */
	bool presize_tables;

	/* Longest accepted key in bytes (hashes, family ids, nonces, jti).
	 * Default 512, at most 65535.  Below 43 (ONCE_NONCE_LEN) the store
	 * cannot hold its own nonces and once_nonce_issue answers ONCE_INVALID. */
	uint32_t max_key_len;
	/* Largest accepted record (its packed size: struct plus all text, lists
	 * and claims), and largest successor payload, in bytes.  Default
	 * 64 KiB; at least sizeof(once_refresh), at most 16 MiB. */
	uint32_t max_record_len;

	/* Period of the background sweeper in milliseconds; 0 = no sweeper
	 * thread (call once_sweep yourself). Default 1000. */
	uint32_t sweep_interval_ms;

	/* How long, in seconds, a family revocation (refresh or access-token)
	 * keeps its revoked mark at the least: the mark also lasts as long as
	 * the latest expiry of any token ever recorded in the family, so this
	 * matters for families revoked before (or without) any token.
	 * Default 86400; 0 .. ONCE_TTL_MAX (see "Times"). */
	int64_t revocation_ttl;

	/* 32-byte key sealing refresh successor payloads at rest (AEAD), or NULL
	 * (then once_refresh_remember_successor answers ONCE_NO_KEY). Copied at
	 * open. */
	const unsigned char *successor_key;

	/* Clock; NULL = the real-time clock in whole seconds, read as time(2)
	 * reads it (CLOCK_REALTIME's second as of the kernel's last tick: what
	 * a gateway's own time(NULL) says, at a tenth of the cost of
	 * clock_gettime; core/clock.c).  Any
	 * reading is safe: it is clamped into [ONCE_TIME_MIN, ONCE_TIME_MAX]
	 * (see "Times"). */
	once_clock_fn clock;
	void *clock_ctx;

	/* Log callback: every failure (the call, the file, the offset and
	 * strerror(errno)), every torn tail cut and every refused option is a
	 * line here.  Default once_log_stderr; NULL = silent.  Embedded
	 * engine, one line per event, from the thread that met it (the log's
	 * writer thread included):
	 *   ERROR "log: fdatasync log-0000000000000003 at offset 8192:
	 *         Input/output error (writes are refused ...)": the log's first
	 *         failed write or sync; the writes refused after it log
	 *         nothing (once_stats' failure_* fields keep it);
	 *   ERROR "checkpoint 00000000000004d2 failed: pwrite snap-...tmp at
	 *         offset 0: No space left on device (the previous checkpoint
	 *         stays in force)": one per failed checkpoint;
	 *   ERROR "open: DIR: ...": a failed once_open (see there), and
	 *         "close: DIR: ..." when once_close answers ONCE_IO;
	 *   WARN  a torn tail cut at open; a log preallocation that hit a
	 *         full disk (once per segment: the log goes on);
	 *   INFO  "open: DIR: recovered ..." (one per open) and
	 *         "checkpoint S: N entries in K snapshots, ..." (one per
	 *         checkpoint). */
	once_log_fn log;
	void *log_ctx;

	/* ---- PostgreSQL (several gateways, one store: README "PostgreSQL") ----
	 * A libpq connection string ("host=/run/postgresql dbname=auth", or a
	 * postgresql:// URI), or NULL for the embedded store (the default).
	 * With it, every function of this header runs on AttestoPhoenix 3.5.1's
	 * tables and statements, so C gateways and AttestoPhoenix nodes share
	 * one database and one guarantee; where its semantics differ from the
	 * embedded store's, the function's comment says so under "PostgreSQL".
	 * dir and postgres together are ONCE_INVALID.  once_open checks that
	 * the five tables exist with the expected columns (it never creates or
	 * alters them: `oncestore schema` prints their DDL) and answers
	 * ONCE_INVALID with a line naming what is missing; ONCE_IO when the
	 * server cannot be reached.  Options of the embedded store (shards,
	 * capacities, sync, checkpoints, log buffer, presize_tables,
	 * revocation_ttl, successor_key, sweep_interval_ms: this engine has
	 * no background sweeper) are ignored; clock, log, max_key_len and
	 * max_record_len apply. */
	const char *postgres;
	/* PostgreSQL schema holding the tables (AttestoPhoenix's
	 * --schema-prefix: [a-z_][a-z0-9_]*, at most 63 bytes, not pg_* or
	 * information_schema), or NULL: search_path decides, on every
	 * connection as it prepares its statements, so a role that may create
	 * tables in an earlier schema of the path could shadow them: set it in
	 * production.  Point postgres at the primary (a multi-host string with
	 * target_session_attrs=read-write): reads on a lagging standby would
	 * miss a revocation. */
	const char *pg_schema;
	/* Prepended to every table and index name (the 2.x migration
	 * generator's --table-prefix; `oncestore schema --table-prefix`), or
	 * NULL.  AttestoPhoenix 3.x has no such option and its nodes use the
	 * unprefixed tables: with a prefix, C nodes and AttestoPhoenix nodes
	 * keep separate tables and single use holds only among the C nodes
	 * (ATTESTO-PG 1.4, 6.2).  Letters, digits and _, at most 13 bytes. */
	const char *pg_table_prefix;
	/* Connections kept open (each call holds one while it runs); default 8,
	 * 1 .. 1024. */
	uint32_t pg_pool_size;
	/* statement_timeout of every connection in ms; a statement that runs
	 * longer fails with ONCE_IO.  Default 5000; 0 = no timeout. */
	uint32_t pg_statement_timeout_ms;
	/* Refresh issuer binding (AttestoPhoenix 3.4.1+): families are written
	 * with claims["urn:attesto:refresh-token:issuer"] = pg_issuer, and
	 * families bound to another issuer (or to none) read as absent.  NULL:
	 * no binding is written or checked. */
	const char *pg_issuer;
	/* AttestoPhoenix's refresh_successor_secret: raw bytes, at least 32,
	 * identical on every node serving a family.  A rotation's successor is
	 * sealed under a key derived from it in AttestoPhoenix's v2 envelope,
	 * so a retry rotated by an Elixir node is honoured by a C node and the
	 * reverse.  NULL: rotations write the strict tombstone (a retry then
	 * finds no successor and the caller revokes: fail closed). */
	const void *pg_successor_secret;
	size_t pg_successor_secret_len;
	/* Rotation grace in seconds (AttestoPhoenix's
	 * refresh_token_rotation_grace_seconds): a successor stays recoverable
	 * until min(rotation + grace, child expires_at - 1).  Default 60; 0
	 * writes the strict tombstone. 0 .. ONCE_TTL_MAX. */
	int64_t pg_rotation_grace;
} once_options;

/* Fills *o with the defaults documented above.  Does nothing when o is NULL. */
ONCE_API void once_options_init(once_options *o);

/* The default log callback: writes "oncestore: error: <message>" (or
 * "warning: ", "info: ") and a newline to stderr, one write per line.
 * ctx is unused. */
ONCE_API void once_log_stderr(void *ctx, once_log_level level, const char *message);

/*
 * Creates a store (or, with a data directory, recovers it).
 * o: options, or NULL for the defaults. out: receives the store on ONCE_OK.
 *
 * Recovery: the committed checkpoint's snapshots are loaded, the log after
 * its start is replayed, and entries already expired are dropped; once_stats
 * reports the time and counts.  A torn tail of the newest segment is
 * dropped and cut from the file, with a warning through the log callback:
 * a crash mid-append, or a power cut that kept any part of the writes no
 * completed fdatasync covered (an earlier record damaged and a later one
 * intact included).  Such writes were never acknowledged, and every
 * record carries what recovery needs to tell them apart from damage to
 * synced records (README "Durability").  Anything else that fails
 * verification (damage followed by a record written after the damaged one
 * was synced, a bad snapshot, a gap in the sequence numbers, a file in the
 * directory named like a store file that is not a regular file: a FIFO, a
 * directory, a symbolic link) fails the open with ONCE_CORRUPT and an error
 * line naming the file and byte offset; only `oncestore repair` truncates,
 * and it says what it drops.  The data directory's parent is fsynced at
 * every open, so the directory's own name survives a power cut.
 *
 * With options.read_only nothing above changes the directory: no tail is
 * cut, nothing is fsynced, and the lock is not taken (see read_only).
 *
 * Returns ONCE_OK | ONCE_INVALID (out is NULL, an option is out of range,
 * or dir is "") | ONCE_LOCKED (another store holds dir; never for read_only) | ONCE_CORRUPT |
 * ONCE_IO | ONCE_NOMEM.  Every failure is also one ERROR line through
 * options.log saying which case it is.  No status is added for the cases
 * of the environment: they are ONCE_IO with errno left set to the failing
 * call's when once_open returns, for a caller to branch on:
 *   ENOENT   the parent of dir does not exist ("open: DIR: mkdir: No such
 *            file or directory (the parent directory P does not exist;
 *            create it, or point dir at an existing one)");
 *            With read_only, ENOENT when dir itself does not exist (nothing
 *            is created), or when the store that holds dir removed files
 *            while they were read, at every one of the readings (the line
 *            names the file and says "try again").
 *   ENOTDIR  dir is a plain file (or a component of its parent is);
 *   EACCES   the store's user may not create or read it, or may not read
 *            one of its files ("open: DIR: open log-0000000000000001 at
 *            offset 0: Permission denied (reading the store's files; ...)":
 *            every file recovery cannot read names the call, file and
 *            offset so, read_only too);
 *   ELOOP    dir is a symbolic link;
 *   ENOSPC, EIO, EROFS ...: a FORMAT, log segment or torn tail could not be
 *            written (the line names the call, file and offset).
 * ONCE_CORRUPT, with errno unspecified, when dir holds store files (log-*,
 * snap-*, CHECKPOINT) but no FORMAT (the line says `oncestore repair
 * --format DIR` rebuilds it from the segments' headers), when FORMAT is
 * damaged (the line names the byte offset and what is wrong), when dir is
 * not empty and holds no store file and no FORMAT ("not an oncestore data
 * directory (no FORMAT; N other files, e.g. 'x')"), and when a data file
 * fails verification (above).  On success an INFO line sums up recovery:
 * snapshot and log records, torn bytes cut, expired entries dropped, time.
 */
ONCE_API once_status once_open(const once_options *o, once_store **out);

/*
 * Stops the background threads, writes and syncs what the log still holds
 * (whatever the sync mode), unlocks the data directory, frees every entry
 * and the store itself.  No other thread may use the store during or after
 * this call; the store is freed whatever it returns.
 * Returns ONCE_OK | ONCE_INVALID (s is NULL) | ONCE_IO (the log had failed,
 * or the final flush failed: what it held may be lost).
 * PostgreSQL: closes the pool's connections; every write was committed when
 * it returned.  ONCE_OK.
 */
ONCE_API once_status once_close(once_store *s);

/*
 * Writes snapshots now and drops the log segments they cover; writers keep
 * running while it works (appends never wait for it; a blocking write
 * whose record arrives while the log moves to a new segment waits that
 * long: the old segment's fdatasync, the new segment's header written and
 * synced, the directory fsynced).  Steps: cut the log at
 * sequence number S; write each shard's live entries to
 * snap-S-P-<shard>.tmp (P: this store's shard count), fsync, rename; fsync
 * the directory; wait until every
 * change the snapshots hold has its log record written, and fdatasync the
 * log (in every sync mode), so a snapshot never holds an effect that is
 * not durable; commit by renaming CHECKPOINT (naming S and P) into place
 * and fsyncing the directory; remove older snapshots and segments.  A
 * crash or power cut at any step recovers from the last committed
 * checkpoint: no step replaces or changes one of its files.  When nothing
 * was logged since the committed checkpoint's start and the shard count
 * is the same, that checkpoint already is this one: nothing is written
 * and ONCE_OK is returned.
 * Returns ONCE_OK | ONCE_INVALID (NULL, a memory-only store: nothing to
 * checkpoint, or a read-only one: options.read_only) | ONCE_IO (a file could not be written; the previous
 * checkpoint stays in force, and if the log itself failed, writes are
 * refused until reopen) | ONCE_NOMEM.
 * PostgreSQL: ONCE_INVALID (the server keeps its own log).
 */
ONCE_API once_status once_checkpoint(once_store *s);

typedef struct once_sweep_counts {
	uint64_t codes;         /* authorization codes removed */
	uint64_t access_tokens; /* access-token records removed */
	uint64_t refresh;       /* refresh tokens removed */
	uint64_t nonces;        /* DPoP nonces removed */
	uint64_t replays;       /* replay-cache entries removed */
	/* Entries the sweep looked at (removed or not): the measure of its cost,
	 * which stays near the number removed however large the tables are. */
	uint64_t examined;
} once_sweep_counts;

/*
 * Deletes every entry whose expires_at < now (strict: an entry expiring at
 * exactly `now` is kept).  The cost grows with the number of expired entries,
 * not with the table size: each shard keeps its entries on a timing wheel of
 * one-second slots and a sweep visits only the slots that have come due.
 * Safe to call while other threads use the store, and concurrently with the
 * background sweeper (sweeps are serialized).  out (may be NULL) receives the
 * counts removed by this call.  Returns ONCE_OK | ONCE_INVALID (s is NULL,
 * or a read-only store, which nothing changes: options.read_only).
 * PostgreSQL: AttestoPhoenix's sweeper (ATTESTO-PG 4): one now for every
 * table, the strict <, expired successor envelopes redacted first, a code
 * kept while its access token lives, tombstones never swept; each DELETE
 * in batches of 1,000 rows so no sweep holds long locks.  counts.examined
 * equals the rows removed; counts.access_tokens stays 0 (they go with their
 * code rows).  Also ONCE_IO.  Sweeps of several nodes may run at once (the
 * counts then split between them).  There is no background sweeper on
 * this engine (sweep_interval_ms is ignored): sweep from one place, or let
 * AttestoPhoenix's sweeper do it.  ONCE_IO from redaction skips only the
 * refresh delete (a successor is redacted before its row goes): codes,
 * nonces and replays are still swept, with the counts filled in.
 */
ONCE_API once_status once_sweep(once_store *s, once_sweep_counts *out);

/* Operations counted in once_stats.ops. */
typedef enum once_op {
	ONCE_OP_CODE_PUT = 0,
	ONCE_OP_CODE_GET,
	ONCE_OP_CODE_TAKE,
	ONCE_OP_CODE_FINALIZE,
	ONCE_OP_ACCESS_RECORD,
	ONCE_OP_ACCESS_REVOKE,
	ONCE_OP_ACCESS_REVOKED, /* true counts as OK, false as NOT_FOUND */
	ONCE_OP_REFRESH_INSERT,
	ONCE_OP_REFRESH_GET,
	ONCE_OP_REFRESH_CONSUME,
	ONCE_OP_REFRESH_SUCCESSOR,
	ONCE_OP_REFRESH_ROTATE,
	ONCE_OP_REFRESH_REVOKE,
	ONCE_OP_NONCE_ISSUE,
	ONCE_OP_NONCE_VALID, /* true counts as OK, false as NOT_FOUND */
	ONCE_OP_NONCE_ACCEPT,
	ONCE_OP_REPLAY_CHECK,
	ONCE_OP_COUNT /* number of operations, not an operation */
} once_op;

/* Name of an operation ("code_put", ...), or "unknown". */
ONCE_API const char *once_op_name(once_op op);

typedef struct once_kind_stats {
	uint64_t entries;  /* live entries, consumed ones included until swept */
	uint64_t bytes;    /* heap bytes of those entries (key and record);
	                    * refresh consumption records and sealed successors
	                    * are not counted */
	uint64_t capacity; /* the configured maximum of entries */
	uint64_t swept;    /* entries removed by sweeps since open */
} once_kind_stats;

/* `struct once_stats` has no typedef of the same name because the function
 * that fills it is called once_stats (C keeps struct tags apart from ordinary
 * identifiers); once_stats_t is the short name. */
struct once_stats {
	once_kind_stats codes;
	once_kind_stats access_tokens;
	once_kind_stats refresh;
	once_kind_stats nonces;
	once_kind_stats replays;
	/* ops[op][status]: how many calls of each operation ended with each
	 * status. Counted per CPU and summed here, so a snapshot taken while
	 * other threads work is approximate; it is exact once they stop. */
	uint64_t ops[ONCE_OP_COUNT][ONCE_STATUS_COUNT];
	uint32_t shards;
	uint64_t sweeps;      /* sweep passes run (explicit and background) */
	uint64_t table_bytes; /* hash-table buckets now (tables grow: options) */
	/* Persistence; zero for a memory-only store. */
	uint64_t log_bytes;          /* bytes appended to the log since open */
	uint64_t log_records;        /* records appended since open */
	uint64_t syncs;              /* fdatasync calls since open */
	uint64_t synced_records;     /* records those syncs made durable: / syncs
	                                = records per sync (group commit) */
	uint64_t sync_ns_total;      /* time spent in them */
	uint64_t sync_ns_max;        /* the longest one */
	int64_t last_checkpoint_at;  /* store clock; 0 = never */
	uint64_t recovery_ns;        /* time once_open spent recovering */
	uint64_t recovered_records;  /* log records replayed at open */
	uint64_t recovered_snapshot_records; /* snapshot records loaded at open */
	uint64_t recovery_dropped_expired;   /* entries dropped at open: expired */
	uint64_t checkpoints;        /* checkpoints completed since open */
	/* PostgreSQL (options.postgres); zero for the embedded store.  On
	 * PostgreSQL, entries per kind are the tables' rows, counted by
	 * once_stats itself (one count(*) per table: a scan, so call it as
	 * an operator would, not per request); bytes, capacity, swept and the
	 * persistence figures above stay 0 (the server keeps its own). */
	uint64_t pg_pool_size;            /* connections the pool may hold */
	uint64_t pg_connections;          /* connections open now */
	uint64_t pg_connects;             /* connections made since open */
	uint64_t pg_reconnects;           /* of those, made to replace a lost one */
	uint64_t pg_errors;               /* statements that failed, connections that
	                                   * could not be made (each an ONCE_IO) */
	uint64_t pg_statements;           /* statements run */
	uint64_t pg_statement_ns_total;   /* time in them, round trip included */
	uint64_t pg_statement_ns_max;     /* the longest one */

	/* ---- since 0.3.0 (fields are only ever appended: see once_stats) ---- */
	/* The family tables (options: room for twice the tokens' capacity):
	 * families with tokens, plus revocation marks. */
	once_kind_stats refresh_families;
	once_kind_stats access_families;
	/* Log sync latency, a histogram with power-of-two bounds:
	 * sync_buckets[i] counts the syncs that took at most 2^(10 + i) ns
	 * (i = 0: 1.024 us ... i = ONCE_SYNC_BUCKETS - 2: 2^34 ns, 17.2 s); the
	 * last counts the slower ones.  They add up to `syncs`.  The
	 * percentiles come from a finer log-linear histogram (16 steps per
	 * power of two: within 6.25%) kept since open. */
#define ONCE_SYNC_BUCKETS 26
	uint64_t sync_buckets[ONCE_SYNC_BUCKETS];
	uint64_t sync_ns_p50;
	uint64_t sync_ns_p99;
	uint64_t sync_ns_p999;
	/* Failed system calls on the log and the data directory since open
	 * (a failure that stops the log, a failed checkpoint and a full disk
	 * met by preallocation each also write a line through options.log;
	 * the writes refused after the log failed are not calls and are not
	 * counted here). */
	uint64_t write_failures;  /* pwrite / write */
	uint64_t sync_failures;   /* fdatasync / fsync */
	/* The failure that stopped writes (sticky until reopen: every later
	 * write answers ONCE_IO): failure_errno 0 = none.  failure_op names
	 * the call and the file ("fdatasync log-0000000000000003"), at byte
	 * failure_offset of it; failure_at is the store clock then. */
	int32_t failure_errno;
	char failure_op[96];
	uint64_t failure_offset;
	int64_t failure_at;
	/* Checkpoints (with `checkpoints` above): failed ones, and how long
	 * the last and the longest successful one took. */
	uint64_t checkpoint_failures;
	uint64_t checkpoint_ns_last;
	uint64_t checkpoint_ns_max;
	/* Log bytes appended since the last committed checkpoint (or since
	 * open): what the next recovery replays.  The automatic checkpoint
	 * compares options.checkpoint_bytes with the bytes since its last
	 * attempt, so after a failed checkpoint it retries only after another
	 * checkpoint_bytes, while this figure keeps growing. */
	uint64_t log_bytes_since_checkpoint;
	/* Recovery at open (with recovery_ns and the recovered_* above):
	 * torn tail bytes cut (read_only: found and left in place), log
	 * segments read. */
	uint64_t recovery_torn_bytes;
	uint64_t recovery_segments;
	/* 1 when the store was opened with options.read_only. */
	uint32_t read_only;
};
typedef struct once_stats once_stats_t;

/*
 * Fills out_size bytes of *out with the store's entries and bytes per kind,
 * operation counts per outcome, and (with a data directory) log, sync,
 * checkpoint, failure and recovery figures.  Does nothing when s or out is
 * NULL.
 *
 * Growing without an ABI break: fields are only ever appended to struct
 * once_stats, never moved or removed.  A program passes the size of the
 * struct it was compiled with (once_stats() below does); the library fills
 * the fields it knows within that size and zeroes the rest, so an older
 * program running on a newer library gets the prefix it knows, and a newer
 * program on an older library sees 0 in the fields that library lacks.
 */
ONCE_API void once_stats_read(once_store *s, struct once_stats *out, size_t out_size);

/* once_stats_read with the size of the struct this program was compiled
 * with: what every caller uses. */
static inline void once_stats(once_store *s, struct once_stats *out)
{
	once_stats_read(s, out, sizeof *out);
}

/*
 * Writes the store's figures (once_stats) in the Prometheus text
 * exposition format, version 0.0.4: HELP and TYPE lines, conventional
 * names with units and _total suffixes (oncestore_entries{kind="code"},
 * oncestore_operations_total{op="code_take",status="SPENT"},
 * oncestore_log_sync_seconds histogram with le buckets, ...), for an
 * exporter or a /metrics handler to serve.  As snprintf: writes at most
 * cap bytes into buf (NUL-terminated when cap > 0) and returns the length
 * of the whole text (without the NUL), so a return >= cap means the text
 * was cut: call again with a larger buffer.  Each call reads the figures
 * afresh and they move between calls (on PostgreSQL each call runs
 * statements, which it counts), so size the buffer with room to spare
 * (return + 1024) and loop until the return is below cap, as README
 * "Metrics" shows.  The families written are listed there.  0 when s is
 * NULL.
 */
ONCE_API size_t once_stats_prometheus(once_store *s, char *buf, size_t cap);

/* Releases a record returned by any call (each is one heap block).
 * NULL is allowed. */
ONCE_API void once_free(void *record);

/* ------------------------------------------------------------------------ */
/* Authorization codes (RFC 6749 section 4.1.2, RFC 7636)                    */
/* ------------------------------------------------------------------------ */

typedef struct once_code {
	const char *client_id;    /* required, non-empty */
	const char *subject;      /* required, non-empty */
	const char *redirect_uri; /* required, non-empty */
	const char *const *scope;
	size_t scope_count;
	const char *const *resource;
	size_t resource_count;
	const char *code_challenge;
	/* NULL or "S256" only ("plain" is refused).  Defaults to "S256" when a
	 * challenge is given; stays NULL without one (a method without a
	 * challenge is ONCE_INVALID). */
	const char *code_challenge_method;
	const char *dpop_jkt; /* RFC 9449 binding */
	const char *x5t_s256; /* RFC 8705 binding (RFC 7800 cnf) */
	const char *nonce;    /* OIDC nonce */
	const void *claims;   /* opaque bytes */
	size_t claims_len;
	const char *family_id; /* optional; links access tokens and refresh family */
	int64_t expires_at;    /* required, ONCE_TIME_MIN .. ONCE_TIME_MAX */
	/* Filled on returned records.  On put, inserted_at is ignored (the
	 * store sets it) and consumed_at / consumed_success must be 0 / false. */
	int64_t inserted_at;
	int64_t consumed_at;
	bool consumed_success;
} once_code;

/* What a replayed code reveals: enough to revoke what it minted. */
typedef struct once_code_meta {
	const char *family_id; /* NULL when the code had none */
	const char *subject;
} once_code_meta;

/*
 * Stores a new authorization code under hash (the code's secret hash, see
 * once_secret_hash).  inserted_at is set from the store clock.
 * Returns ONCE_OK | ONCE_EXISTS (hash already present, even if expired or
 * consumed; the stored record is untouched, no upsert) | ONCE_INVALID (NULL
 * store/hash/code, bad key length, missing required field, a method other
 * than S256, a method without a challenge, expires_at <= 0 or above
 * ONCE_TIME_MAX, consumed fields
 * set, a list or claims pointer NULL with a nonzero count, record larger
 * than max_record_len) | ONCE_FULL | ONCE_NOMEM | ONCE_IO.
 * PostgreSQL: one INSERT ... ON CONFLICT (code_hash) DO NOTHING.  Also
 * ONCE_INVALID for: a key or text that is not UTF-8 or holds a NUL, a
 * hash over 88 characters, client_id, subject, a list element or the
 * challenge over 255 characters (the columns' sizes), a dpop_jkt that is
 * not a 43-character thumbprint, x5t_s256 (AttestoPhoenix's cnf holds
 * exactly {"jkt":...}), claims that are not a portable JSON object (string
 * keys; null, booleans, strings, integers, arrays, objects; no floats; at
 * most 61 levels deep).  nonce goes into claims["nonce"] (the nonce column
 * stays NULL, as AttestoPhoenix 3.x writes it).  Never ONCE_FULL.  Times
 * after 9999-12-31T23:59:59 are written as that second (PostgreSQL and
 * Elixir stop there) and read back as ONCE_TIME_MAX.
 */
ONCE_API once_status once_code_put(once_store *s, const void *hash, size_t hlen,
                                   const once_code *c);

/*
 * Reads a present, unconsumed code without consuming it.
 * Returns ONCE_OK (+ *out) | ONCE_NOT_FOUND (unknown or already taken) |
 * ONCE_INVALID | ONCE_NOMEM.  Expiry is not checked (the caller checks
 * expires_at); a swept code is unknown.
 * PostgreSQL: claims come back in the server's jsonb key order, compacted
 * (as refresh tokens' claims), without the "nonce" member (returned as nonce; a legacy non-NULL nonce column
 * wins); {} comes back as no claims.  A key no row could hold answers
 * ONCE_NOT_FOUND.
 */
ONCE_API once_status once_code_get(once_store *s, const void *hash, size_t hlen,
                                   once_code **out);

/*
 * Atomically claims the code (sets consumed_at to now).
 * Returns
 *   ONCE_OK + *out (consumed_at set, consumed_success false) to exactly one
 *     caller of any number of concurrent ones;
 *   ONCE_SPENT + *meta when the code was already claimed AND finalized:
 *     this is a replay, revoke what the family minted;
 *   ONCE_NOT_FOUND when unknown, or claimed but not finalized (a failed
 *     first presentation is not reuse evidence) - also what the losers of a
 *     race get while the winner has not finalized;
 *   ONCE_INVALID | ONCE_NOMEM (nothing changed: the copy is made before the
 *     claim) | ONCE_IO.
 * Expiry is not checked here (the caller checks expires_at); an expired code
 * is still spent by its first presentation.
 * PostgreSQL: the single UPDATE ... SET consumed_at = now WHERE code_hash
 * = $1 AND consumed_at IS NULL RETURNING; its loser reads consumed_success
 * to tell SPENT from NOT_FOUND.  ONCE_IO when the connection or the server
 * failed mid-call, and ONCE_NOMEM when the copy could not be made: both may
 * come after the claim committed, so refuse the request.
 */
ONCE_API once_status once_code_take(once_store *s, const void *hash, size_t hlen,
                                    once_code **out, once_code_meta **meta);

/*
 * Marks a claimed code as successfully redeemed, so a later take reports
 * ONCE_SPENT.  (AttestoPhoenix calls this mark_consumed.)
 * Returns ONCE_OK (also when already finalized) | ONCE_NOT_FOUND (unknown,
 * or not claimed yet) | ONCE_INVALID | ONCE_IO.
 * PostgreSQL: AttestoPhoenix's mark_consumed sets consumed_success; this
 * function has no family argument, so family_id is left as it is.
 */
ONCE_API once_status once_code_finalize(once_store *s, const void *hash, size_t hlen);

/*
 * Records the access token `jti` minted from the code family `family_id`,
 * valid until expires_at (ONCE_TIME_MIN .. ONCE_TIME_MAX).
 * Returns ONCE_OK | ONCE_EXISTS (jti already recorded) | ONCE_INVALID (bad
 * key, expires_at outside the range) |
 * ONCE_FULL | ONCE_NOMEM | ONCE_IO.
 * A token recorded into a family that is already revoked reads as revoked
 * at once (revocation is sticky).
 * PostgreSQL: AttestoPhoenix keeps access tokens on the code rows of their
 * family (access_token_jti, access_token_expires_at): this sets them on
 * every code row whose family_id is family_id, and answers ONCE_NOT_FOUND
 * when there is none (no token is recorded without a code).  A row holds
 * one token: recording another replaces it (the first then no longer
 * reads as revoked).  ONCE_EXISTS comes from a read before the UPDATE (the
 * column has no unique index), so two concurrent records of one jti may
 * both succeed.  Never ONCE_FULL.
 */
ONCE_API once_status once_code_record_access_token(once_store *s, const void *family_id,
                                                   size_t flen, const void *jti, size_t jlen,
                                                   int64_t expires_at);

/*
 * Revokes every access token recorded for family_id, in O(1): the family
 * holds one revoked flag that every token consults.  Idempotent, also for
 * an unknown family.  Sticky: a token recorded into the family later reads
 * as revoked too; the mark lasts as long as the latest-expiring token of
 * the family and at least options.revocation_ttl.
 * Returns ONCE_OK | ONCE_FULL (an unknown family and no room left for its
 * mark: nothing was revoked) | ONCE_INVALID | ONCE_NOMEM | ONCE_IO.
 * PostgreSQL: AttestoPhoenix's UPDATE ... SET access_token_revoked_at =
 * now on the family's code rows that carry a token.  Sticky only as far as
 * those columns go: a token recorded later onto a row that was revoked
 * reads as revoked (the row keeps access_token_revoked_at), but in a
 * family revoked before any token was recorded later tokens are not
 * (AttestoPhoenix has no family mark for access tokens).  Never
 * ONCE_FULL.
 */
ONCE_API once_status once_code_revoke_family_access_tokens(once_store *s, const void *family_id,
                                                           size_t flen);

/*
 * True when jti was recorded, its family was revoked, and the token has not
 * expired (now <= expires_at): a revoked token past its expires_at no longer
 * reports revoked.  False for unknown tokens and for invalid arguments.
 * PostgreSQL: AttestoPhoenix's test, access_token_expires_at > now: a
 * token is no longer reported at its expiry second itself.  When the
 * server cannot answer, true (fail closed: refuse the token), counted as
 * ONCE_IO in once_stats.
 */
ONCE_API bool once_access_token_revoked(once_store *s, const void *jti, size_t jlen);

/* ------------------------------------------------------------------------ */
/* Refresh tokens (RFC 6749 section 6, 10.4; Security BCP 4.13)             */
/* ------------------------------------------------------------------------ */

typedef struct once_refresh {
	const char *family_id; /* required, non-empty */
	const char *subject;   /* required, non-empty */
	int64_t expires_at;    /* required, ONCE_TIME_MIN .. ONCE_TIME_MAX */
	int64_t generation;
	const char *client_id;
	const char *const *scope; /* stored with duplicates removed */
	size_t scope_count;
	const char *const *resource;
	size_t resource_count;
	const char *acr;
	int64_t auth_time;
	const char *dpop_jkt;
	const char *x5t_s256;
	const void *claims;
	size_t claims_len;
	const char *parent_hash; /* lineage, diagnostic */
	/* Filled on returned records.  On insert, inserted_at is ignored (the
	 * store sets it) and the others must be 0 / false / NULL. */
	bool consumed;
	bool revoked;
	int64_t consumed_at;
	int64_t inserted_at;
	const void *successor; /* decrypted successor payload, NULL when none */
	size_t successor_len;
} once_refresh;

/*
 * Families.  Tokens of one family (one login's rotation chain) may live in
 * any shard; the family is an object of its own holding one revoked flag
 * that every read of every token consults, so revocation is O(1) in the
 * family's size.  A token reads as live only while its family exists and
 * is not revoked.  A family lives as long as the latest expiry of any token
 * ever inserted into it (and a revocation mark at least
 * options.revocation_ttl), so sweeping cannot make a revoked family live
 * again.
 *
 * Successors.  A successor payload (it holds a plaintext token) is kept only
 * as XChaCha20-Poly1305 ciphertext under options.successor_key, with the
 * token's hash as associated data; one that fails to open (another key
 * after a restart, tampering) reads as absent, never as garbage.
 */

/*
 * Inserts a new token under hash.  inserted_at is set from the store clock;
 * scope is stored with duplicates removed (first occurrences, in order).
 * Returns ONCE_OK | ONCE_REVOKED (the family is revoked; nothing stored) |
 * ONCE_EXISTS (hash present; the stored token is untouched) | ONCE_INVALID
 * (NULL/bad key; family_id, subject missing or empty; expires_at <= 0 or
 * above ONCE_TIME_MAX; the
 * record claims to be consumed or revoked, or carries consumed_at or a
 * successor; a list or claims pointer NULL with a nonzero count; larger
 * than max_record_len; family_id longer than max_key_len) | ONCE_FULL |
 * ONCE_NOMEM | ONCE_IO.
 * An insert racing with a revocation of its family either gets
 * ONCE_REVOKED or lands a token that reads as revoked as soon as the
 * revocation returns.
 * PostgreSQL: AttestoPhoenix's insert transaction under
 * pg_advisory_xact_lock(1096045126, hashtext(family_id)), so it serializes
 * with AttestoPhoenix nodes on the same family.  ONCE_REVOKED when the
 * family has a tombstone or a legacy family_revoked row; ONCE_EXISTS also
 * when (family_id, generation) is taken.  scope keeps its duplicates
 * (AttestoPhoenix 3.x does); x5t_s256 and claims as for once_code_put;
 * with options.pg_issuer the issuer claim is added to claims.  Never
 * ONCE_FULL.
 */
ONCE_API once_status once_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                         const once_refresh *r);

/*
 * Reads a token, consumed or not (consumed, consumed_at and any decrypted
 * successor are filled).  Returns ONCE_OK (+ *out) | ONCE_NOT_FOUND
 * (unknown, swept, or its family revoked) | ONCE_INVALID | ONCE_NOMEM.
 * Expiry is not checked (the caller checks expires_at).
 * PostgreSQL: also ONCE_NOT_FOUND for a family bound to another issuer
 * (options.pg_issuer).  successor is the successor token (see rotate)
 * when the parent's envelope opens with options.pg_successor_secret,
 * passes AttestoPhoenix's lineage check, and the retry window is open: the
 * parent has not expired, now <= the envelope's retry_until (min(rotation
 * + pg_rotation_grace, child expires_at - 1); for a legacy v1 envelope
 * min(consumed_at + grace, parent expires_at - 1)), and the child still
 * exists unconsumed and unexpired with the same data.  Outside it the
 * record comes back without a successor, as it does from consume and
 * rotate answering ONCE_SPENT: treat the retry as reuse and revoke, as
 * AttestoPhoenix does.
 */
ONCE_API once_status once_refresh_get(once_store *s, const void *hash, size_t hlen,
                                      once_refresh **out);

/*
 * Consumes a token.  Returns
 *   ONCE_OK + *out, the record as it stood (unconsumed), to exactly one of
 *     any number of concurrent callers;
 *   ONCE_SPENT + *out (consumed, consumed_at, family_id and any remembered
 *     successor) when already consumed: either an honest retry inside the
 *     caller's grace window (hand out the successor) or reuse (revoke the
 *     family);
 *   ONCE_NOT_FOUND when unknown or its family is revoked (never SPENT:
 *     there is no family left to revoke) | ONCE_INVALID | ONCE_NOMEM
 *     (nothing changed: the winner's copy is made before the CAS).
 * PostgreSQL: one UPDATE ... SET consumed = true WHERE NOT consumed and
 * the family has no tombstone and no legacy flag; ONCE_IO when the call
 * failed mid-way (the token may be consumed: refuse).
 */
ONCE_API once_status once_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                          once_refresh **out);

/*
 * Remembers an opaque successor payload (1 to max_record_len bytes) on a
 * consumed, unrevoked token,
 * sealed at rest; a later call replaces it.
 * Returns ONCE_OK | ONCE_NOT_FOUND (unknown, unconsumed, or family revoked)
 * | ONCE_NO_KEY (no successor_key configured; checked after the arguments)
 * | ONCE_INVALID | ONCE_NOMEM | ONCE_IO.
 * PostgreSQL: succ must be the successor token itself, whose child (key
 * base64url(SHA-256(succ)), generation + 1, parent_hash = hash) exists;
 * it is sealed as rotate seals it.  ONCE_INVALID when no such child;
 * ONCE_NO_KEY without options.pg_successor_secret (or with grace 0).
 */
ONCE_API once_status once_refresh_remember_successor(once_store *s, const void *hash,
                                                     size_t hlen, const void *succ, size_t n);

/*
 * Rotates in one atomic step: consumes `parent`, inserts `succ` under
 * `child` into the same family, and remembers `payload` (optional: NULL
 * and 0 for none) as the parent's successor.  No reader ever sees a
 * consumed parent without its successor, or the child before the parent is
 * consumed; with persistence it is one log record.
 * Returns
 *   ONCE_OK + *parent_out, the parent as it stood (unconsumed);
 *   ONCE_SPENT + *parent_out with the successor the winner remembered
 *     (apply the grace rule or revoke) - of concurrent rotations of one
 *     parent exactly one gets OK;
 *   ONCE_NOT_FOUND (parent unknown, or its family revoked) |
 *   ONCE_REVOKED (the family was revoked while this rotation ran) |
 *   ONCE_EXISTS (child hash taken, also by a concurrent rotation of the
 *   same parent to the same child) | ONCE_INVALID (as for insert, or
 *   succ->family_id differs from the parent's, or child == parent) |
 *   ONCE_NO_KEY (payload given, no key) | ONCE_FULL | ONCE_NOMEM | ONCE_IO.
 * On any status but OK nothing changed: the parent stays unconsumed and
 * no child exists.
 * PostgreSQL: AttestoPhoenix's rotate/4 transaction (the family lock, then
 * SELECT ... FOR UPDATE of the parent, the parent's UPDATE and the child's
 * INSERT), so a C node and an AttestoPhoenix node rotating one family
 * serialize.  payload must be the child's token string itself and child
 * its hash, base64url(SHA-256(payload)) (ONCE_INVALID otherwise): it is
 * sealed into AttestoPhoenix's v2 envelope under
 * options.pg_successor_secret with retry_until = min(now + grace, child
 * expires_at - 1), so a retry is honoured by either kind of node; without
 * a payload, or with options.pg_rotation_grace 0, the strict tombstone is
 * written (a retry finds no successor: revoke).  A payload with grace > 0
 * and no pg_successor_secret is ONCE_NO_KEY, nothing changed.  The child's generation is the parent's + 1
 * (succ->generation must be 0 or that).  Also: ONCE_EXPIRED when the
 * parent's expires_at <= now; ONCE_REVOKED when the child's generation is
 * already taken in the family (AttestoPhoenix's family_integrity_error:
 * the family is revoked, as AttestoPhoenix does).
 */
ONCE_API once_status once_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                         const void *child, size_t clen,
                                         const once_refresh *succ, const void *payload,
                                         size_t n, once_refresh **parent_out);

/*
 * Revokes a family: O(1), idempotent, also for an unknown family (whose
 * mark then lasts options.revocation_ttl).  Sticky: from the moment it
 * returns every token of the family reads as revoked (NOT_FOUND), every
 * later insert into it gets ONCE_REVOKED - including a successor whose
 * consume won just before the revocation - and a later rotation of one of
 * its tokens gets ONCE_NOT_FOUND (the parent no longer reads as live).
 * Returns ONCE_OK | ONCE_FULL (an unknown family and no room left for its
 * mark: nothing was revoked; sweep or raise max_refresh) | ONCE_INVALID |
 * ONCE_NOMEM | ONCE_IO.
 * PostgreSQL: AttestoPhoenix 3.x revocation: under the family lock, a
 * tombstone in attesto_refresh_family_revocations (kept forever: sweeps
 * never remove it) and the family's rows deleted.  Never ONCE_FULL.
 */
ONCE_API once_status once_refresh_revoke_family(once_store *s, const void *family_id,
                                                size_t flen);

/* ------------------------------------------------------------------------ */
/* DPoP server nonces (RFC 9449 section 8)                                   */
/* ------------------------------------------------------------------------ */

/*
 * Mints a nonce: 32 bytes from a CSPRNG, base64url without padding (43
 * characters + NUL written to out), with issued_at = now and
 * expires_at = now + ttl_seconds (at most ONCE_TIME_MAX: it saturates).
 * Returns ONCE_OK | ONCE_INVALID (NULL store/out, ttl <= 0 or above
 * ONCE_TTL_MAX, max_key_len < ONCE_NONCE_LEN) | ONCE_FULL | ONCE_NOMEM |
 * ONCE_IO.  out is untouched on failure.
 * The CSPRNG is per thread: ChaCha20 keyed from the kernel (getrandom) on
 * a thread's first draw and rekeyed from the kernel after every 1 MiB of
 * output, with fast key erasure in between (each refill's first 32 bytes
 * replace the key; bytes handed out are wiped), so most draws make no
 * system call.  A fork child never repeats its parent's stream: the state
 * sits on pages marked MADV_WIPEONFORK (the child finds it zeroed and
 * reseeds), and where the kernel lacks that a pthread_atfork handler
 * forces the reseed.
 * PostgreSQL: one row in dpop_nonces, the nonce in plaintext (as
 * AttestoPhoenix stores it).  Never ONCE_FULL.
 */
ONCE_API once_status once_nonce_issue(once_store *s, int64_t ttl_seconds,
                                      char out[ONCE_NONCE_LEN + 1]);

/* True when nonce was issued here, expires_at > now, and it is unused.
 * Read-only. False for invalid arguments.
 * PostgreSQL: AttestoPhoenix's valid? SELECT; false when the server cannot
 * answer (counted as ONCE_IO). */
ONCE_API bool once_nonce_valid(once_store *s, const void *nonce, size_t len);

/*
 * Atomically consumes a nonce.  ttl_seconds is the freshness window the
 * caller accepts: the nonce is fresh when issued_at >= now - ttl_seconds.
 * Returns ONCE_OK to exactly one caller | ONCE_SPENT (already used, checked
 * first) | ONCE_EXPIRED (unused but issued_at < now - ttl, or past the
 * expires_at it was issued with - the same strict rule the sweep uses, so
 * the answer does not depend on when the sweep runs; the nonce stays
 * unused) | ONCE_NOT_FOUND (never issued here, or swept) | ONCE_INVALID
 * (ttl <= 0 or above ONCE_TTL_MAX, bad key) | ONCE_IO.
 * PostgreSQL: AttestoPhoenix's UPDATE ... SET used_at WHERE used_at IS
 * NULL AND issued_at >= now - ttl AND expires_at > now.  Note that
 * AttestoPhoenix's own DPoP path only calls valid? (nonces reusable until
 * expiry): a nonce accepted here is refused afterwards by both kinds of
 * node, while one AttestoPhoenix checked stays usable.
 */
ONCE_API once_status once_nonce_accept(once_store *s, const void *nonce, size_t len,
                                       int64_t ttl_seconds);

/* ------------------------------------------------------------------------ */
/* DPoP proof replay cache (RFC 9449 section 11.1)                           */
/* ------------------------------------------------------------------------ */

/*
 * Records jti with expires_at = now + ttl_seconds (at most ONCE_TIME_MAX:
 * it saturates).
 * Returns ONCE_OK the first time, to exactly one of any number of concurrent
 * callers | ONCE_SPENT (already recorded; a present-but-expired entry is
 * still a replay until swept) | ONCE_INVALID (ttl <= 0 or above
 * ONCE_TTL_MAX, NULL, empty or
 * over-long jti) | ONCE_FULL | ONCE_NOMEM | ONCE_IO.
 * Recommended key: the proof's jkt || htu || jti, so one client cannot burn
 * another's jti.  Recommended ttl: proof lifetime + 2 x allowed clock skew.
 * PostgreSQL: INSERT ... ON CONFLICT (jti) DO NOTHING into dpop_replays;
 * jti at most 255 bytes.  The table is shared with AttestoPhoenix's other
 * replay namespaces; use once_dpop_replay_key for DPoP proofs so C and
 * Elixir nodes see each other's.  Never ONCE_FULL.
 */
ONCE_API once_status once_replay_check(once_store *s, const void *jti, size_t len,
                                       int64_t ttl_seconds);

/* ------------------------------------------------------------------------ */
/* Non-blocking durable writes (event-loop hosts)                           */
/* ------------------------------------------------------------------------ */

/*
 * RULE: do not answer your client until the call's ticket is durable.
 *
 *     fd = once_ticket_fd(s);      (once per event loop, at its start)
 *     st = once_code_take_async(s, hash, hlen, &code, &meta, &ticket);
 *     ... when fd is readable:
 *         once_tickets_drain(s, fd, &upto) == ONCE_OK: answer every request with ticket <= upto
 *         ONCE_IO: answer every request with ticket > upto with an error
 *
 * Every write has a form ending in _async that takes the same arguments
 * plus a ticket.  It decides exactly as the blocking form does (the same
 * CAS, the same statuses, the same records copied out), hands its log
 * record to the log writer thread and returns at once, without waiting
 * for the disk and without any disk I/O on the calling thread.
 *
 * *ticket receives the record's position in the log (> 0), or 0 when
 * nothing was logged (a status that changed nothing, or a store without a
 * data directory): a ticket of 0 needs no wait.  Tickets are numbered in
 * log order across all threads, and become durable in that order: when
 * ticket t is durable, so is every ticket below it.  "Durable" is what the
 * blocking form would have waited for under the store's sync mode:
 * on stable storage (fdatasync) under ONCE_SYNC_ALWAYS, written to the
 * kernel under ONCE_SYNC_INTERVAL and ONCE_SYNC_NONE.
 *
 * PostgreSQL: an _async call runs its statements on the calling thread
 * (the round trips to the server are the wait: run these calls on worker
 * threads, not on the loop) and returns when they committed, with ticket
 * 0; once_ticket_fd answers -1 (EINVAL), as on a memory-only store.
 *
 * The effect is visible in memory at once (a taken code is spent for every
 * other caller before its ticket is durable): single use is decided by the
 * call, durability by the ticket.  If the ticket fails (the log could not
 * be written or synced), the effect stays in memory (fail closed, as with
 * ONCE_IO from a blocking call) but may be lost by a crash: answer the
 * client with an error, never with success.
 *
 * How a host learns of durability, without blocking: once_ticket_fd gives
 * each event loop its own file descriptor (a Linux eventfd) that becomes
 * readable whenever the durable position advances or the log fails; add
 * it to epoll, kqueue emulation, libuv (uv_poll_t) or any loop, and when
 * it fires call once_tickets_drain with it (which reads the fd) and answer
 * every request whose ticket is at or below the position it returns.  One
 * descriptor per loop, because a read clears the descriptor: two loops
 * sharing one could each eat the other's wake-up and sleep on a ticket
 * that is durable already.  Why a file descriptor and
 * not a callback: a callback would run on the store's writer thread, and
 * every loop would have to hand the result back to its own thread through
 * a descriptor anyway (uv_async_send is one); a descriptor also wakes a
 * loop that is blocked in epoll_wait with nothing else to do.
 *
 * Failure: a failed write or fdatasync fails every ticket not yet durable,
 * at once and for good: once_tickets_durable answers ONCE_IO with the last
 * durable position, the descriptor fires, and every later write (either
 * form) answers ONCE_IO until the store is reopened.
 *
 * Bound: records wait in a buffer of at most options.log_buffer_bytes; a
 * ticket is a number, so outstanding tickets cost the host nothing either.
 * The writer drains the buffer whether or not the host polls.  This is the
 * one wait an _async call can make: when the disk has fallen
 * log_buffer_bytes behind (64 MiB by default: about 800,000 records), the
 * call waits until the writer has made room, after its decision and
 * before it returns (it cannot refuse then: the change is made).  A host
 * that must never wait limits what it keeps in flight (the example
 * examples/uv_gateway.c stops reading from a connection with 1024 answers
 * pending).
 *
 * once_close with tickets outstanding writes and syncs everything first:
 * it returns ONCE_OK only when every ticket ever handed out is durable, and
 * ONCE_IO when any failed.  A host that must know which of its outstanding
 * requests to fail calls once_ticket_wait(s, last_ticket) (or
 * once_tickets_durable) before once_close.
 *
 * The blocking calls stay, for threaded hosts; they share the writer and
 * its group commit (a blocking call is its _async form followed by
 * once_ticket_wait; under ONCE_SYNC_INTERVAL and NONE, where its record
 * only has to reach the kernel, it writes the queue itself when the writer
 * is not writing, which saves a hand-off).
 */
typedef uint64_t once_ticket;

/* The _async forms.  Same arguments, statuses and out-records as the
 * blocking calls above, plus `ticket` (required, not NULL: else
 * ONCE_INVALID); *ticket is set on every status. */
ONCE_API once_status once_code_put_async(once_store *s, const void *hash, size_t hlen,
                                         const once_code *c, once_ticket *ticket);
ONCE_API once_status once_code_take_async(once_store *s, const void *hash, size_t hlen,
                                          once_code **out, once_code_meta **meta,
                                          once_ticket *ticket);
ONCE_API once_status once_code_finalize_async(once_store *s, const void *hash, size_t hlen,
                                              once_ticket *ticket);
ONCE_API once_status once_code_record_access_token_async(once_store *s, const void *family_id,
                                                         size_t flen, const void *jti,
                                                         size_t jlen, int64_t expires_at,
                                                         once_ticket *ticket);
ONCE_API once_status once_code_revoke_family_access_tokens_async(once_store *s,
                                                                 const void *family_id,
                                                                 size_t flen, once_ticket *ticket);
ONCE_API once_status once_refresh_insert_async(once_store *s, const void *hash, size_t hlen,
                                               const once_refresh *r, once_ticket *ticket);
ONCE_API once_status once_refresh_consume_async(once_store *s, const void *hash, size_t hlen,
                                                once_refresh **out, once_ticket *ticket);
ONCE_API once_status once_refresh_remember_successor_async(once_store *s, const void *hash,
                                                           size_t hlen, const void *succ,
                                                           size_t n, once_ticket *ticket);
ONCE_API once_status once_refresh_rotate_async(once_store *s, const void *parent, size_t plen,
                                               const void *child, size_t clen,
                                               const once_refresh *succ, const void *payload,
                                               size_t n, once_refresh **parent_out,
                                               once_ticket *ticket);
ONCE_API once_status once_refresh_revoke_family_async(once_store *s, const void *family_id,
                                                      size_t flen, once_ticket *ticket);
ONCE_API once_status once_nonce_issue_async(once_store *s, int64_t ttl_seconds,
                                            char out[ONCE_NONCE_LEN + 1], once_ticket *ticket);
ONCE_API once_status once_nonce_accept_async(once_store *s, const void *nonce, size_t len,
                                             int64_t ttl_seconds, once_ticket *ticket);
ONCE_API once_status once_replay_check_async(once_store *s, const void *jti, size_t len,
                                             int64_t ttl_seconds, once_ticket *ticket);

/*
 * A new descriptor that becomes readable when the durable position
 * advances or the log fails, and is readable at once: a Linux eventfd
 * (non-blocking, close-on-exec).  Call it once per event loop (each call
 * makes another; at most 256 per store) and keep it for the store's life;
 * the store owns it (do not close it; once_close does).  once_tickets_drain
 * with it (or reading it) rearms it.  Returns -1 with errno EINVAL for NULL
 * or a store without a data directory (every ticket is 0 there: nothing to
 * wait for), or -1 with EMFILE (past 256) or eventfd's errno (EMFILE,
 * ENFILE, ENOMEM) when the descriptor cannot be made.
 */
ONCE_API int once_ticket_fd(once_store *s);

/*
 * *upto receives the durable position: every ticket <= *upto is durable.
 * Returns ONCE_OK | ONCE_IO (the log has failed: every ticket above *upto
 * has failed and never becomes durable) | ONCE_INVALID (NULL argument).
 * A store without a data directory answers ONCE_OK with *upto = 0.
 * Never blocks; no system call.
 */
ONCE_API once_status once_tickets_durable(once_store *s, once_ticket *upto);

/* once_tickets_durable after clearing the readiness of fd (one
 * non-blocking read), a descriptor once_ticket_fd gave this loop: the call
 * to make when it fires.  fd -1: no descriptor to clear (a store without a
 * data directory).  ONCE_INVALID also when fd is not one of this store's
 * descriptors (nothing is read from it). */
ONCE_API once_status once_tickets_drain(once_store *s, int fd, once_ticket *upto);

/*
 * Blocks until ticket t is durable (ONCE_OK) or has failed (ONCE_IO).
 * Ticket 0 answers ONCE_OK at once; a ticket never handed out answers
 * ONCE_INVALID.  For threads that may block (shutdown, tests, tools).
 */
ONCE_API once_status once_ticket_wait(once_store *s, once_ticket t);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Writes 32 CSPRNG bytes as base64url without padding (43 chars + NUL).
 * Returns ONCE_OK | ONCE_INVALID (out is NULL).
 * The same generator as once_nonce_issue: per thread, seeded from the
 * kernel and reseeded every 1 MiB of output, fast key erasure, fork-safe
 * (a child reseeds before its first draw).  Thread-safe, no lock. */
ONCE_API once_status once_secret_generate(char out[ONCE_SECRET_LEN + 1]);

/* Writes base64url(SHA-256(secret)) without padding (43 chars + NUL):
 * identical to AttestoPhoenix's Secret.hash, so keys interoperate.
 * Returns ONCE_OK | ONCE_INVALID (out NULL, or secret NULL with len > 0). */
ONCE_API once_status once_secret_hash(const void *secret, size_t len,
                                      char out[ONCE_SECRET_LEN + 1]);

/* Writes AttestoPhoenix's DPoP replay key, base64url(SHA-256(jkt ":" jti))
 * without padding (43 chars + NUL), for once_replay_check on either
 * engine: keyed by the proof key's RFC 7638 thumbprint (jkt), so one
 * client cannot burn another's jti; the raw jti is never stored; and a C
 * gateway and an AttestoPhoenix node sharing PostgreSQL see each other's
 * proofs (ATTESTO-PG section 3).  Recommended for both engines, with a ttl
 * of at least 121 s (AttestoPhoenix: max_age 60 + future skew 60 + 1).
 * Returns ONCE_OK | ONCE_INVALID (a NULL or empty argument). */
ONCE_API once_status once_dpop_replay_key(const char *jkt, size_t jkt_len, const void *jti,
                                          size_t jti_len, char out[ONCE_SECRET_LEN + 1]);

#ifdef __cplusplus
}
#endif

#endif /* ONCESTORE_H */
