#!/usr/bin/env bash
# tests/pg/test_schema.sh - TAP tests of `oncestore schema` (tools/schema.c,
# pg/layout.c) against a real server.  Suite pg.
#
#   bash tests/pg/test_schema.sh path/to/oncestore
#
# ONCE_TEST_POSTGRES is the server's libpq connection string
# (tests/pg/cluster.sh start sets it); psql and pg_dump are taken from
# PGBIN, else the newest /usr/lib/postgresql/*/bin, else PATH.  Every
# check runs in databases of its own, dropped at the end.
#
# The reference is ATTESTO-PG's text, copied below: the output must equal
# section 1.2 byte for byte (1.3's qualification and 1.4's prefix applied
# to it by sed), and the tables it creates must dump exactly like the
# tables section 1.2's statements create when applied by hand.  A drift
# from AttestoPhoenix's layout in pg/layout.c fails here.
set -u
export LC_ALL=C

ONCESTORE=${1:?usage: test_schema.sh ONCESTORE}
if [ -z "${ONCE_TEST_POSTGRES:-}" ]; then
	echo "Bail out! ONCE_TEST_POSTGRES is not set (eval \"\$(tests/pg/cluster.sh start)\" sets it)"
	exit 1
fi

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -n "$PGBIN" ] && [ -x "$PGBIN/psql" ]; then
	PSQL=$PGBIN/psql PG_DUMP=$PGBIN/pg_dump
else
	PSQL=$(command -v psql) PG_DUMP=$(command -v pg_dump)
fi
if [ -z "$PSQL" ] || [ -z "$PG_DUMP" ]; then
	echo "Bail out! psql and pg_dump not found (apt-get install postgresql-client, or set PGBIN)"
	exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/oncestore-schema-XXXXXX") || exit 1
DBS=()
cleanup() {
	for db in "${DBS[@]}"; do
		"$PSQL" -X -q -d "$ONCE_TEST_POSTGRES" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
			>/dev/null 2>&1
	done
	rm -rf "$T"
}
trap cleanup EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/#   /'; done
}
# same DESCRIPTION FILE1 FILE2: ok when the files are equal (a diff if not).
same() {
	if cmp -s "$2" "$3"; then ok "$1"; else not_ok "$1" "$(diff "$2" "$3" | head -40)"; fi
}

# ---- ATTESTO-PG 1.2, verbatim: Up (no prefix), what Ecto emits ----
cat >"$T/ref-up.sql" <<'SQL'
CREATE TABLE "attesto_authorization_codes" ("code_hash" varchar(88) NOT NULL, "client_id" varchar(255) NOT NULL, "subject" varchar(255) NOT NULL, "scope" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "resource" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "redirect_uri" text NOT NULL, "code_challenge" varchar(255), "code_challenge_method" varchar(16), "cnf" jsonb, "nonce" varchar(255), "claims" jsonb DEFAULT '{}' NOT NULL, "family_id" varchar(255), "access_token_jti" varchar(255), "access_token_expires_at" timestamp(0), "access_token_revoked_at" timestamp(0), "expires_at" timestamp(0) NOT NULL, "consumed_at" timestamp(0), "consumed_success" boolean DEFAULT false NOT NULL, "inserted_at" timestamp(0) NOT NULL, PRIMARY KEY ("code_hash"));
CREATE INDEX "attesto_authorization_codes_expires_at_index" ON "attesto_authorization_codes" ("expires_at");
CREATE INDEX "attesto_authorization_codes_family_id_index" ON "attesto_authorization_codes" ("family_id");
CREATE INDEX "attesto_authorization_codes_access_token_jti_index" ON "attesto_authorization_codes" ("access_token_jti");
CREATE TABLE "attesto_refresh_tokens" ("id" uuid, "token_hash" varchar(88) NOT NULL, "family_id" varchar(255) NOT NULL, "generation" integer DEFAULT 0 NOT NULL, "client_id" varchar(255), "subject" varchar(255) NOT NULL, "scope" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "resource" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "acr" varchar(255), "auth_time" bigint, "family_expires_at" bigint, "attestation_jkt" varchar(43), "cnf" jsonb, "claims" jsonb DEFAULT '{}' NOT NULL, "consumed" boolean DEFAULT false NOT NULL, "consumed_at" timestamp(0), "successor" jsonb, "family_revoked" boolean DEFAULT false NOT NULL, "expires_at" timestamp(0) NOT NULL, "parent_hash" varchar(88), "inserted_at" timestamp(0) NOT NULL, PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "attesto_refresh_tokens_token_hash_index" ON "attesto_refresh_tokens" ("token_hash");
CREATE UNIQUE INDEX "attesto_refresh_tokens_family_id_generation_index" ON "attesto_refresh_tokens" ("family_id", "generation");
CREATE INDEX "attesto_refresh_tokens_family_id_index" ON "attesto_refresh_tokens" ("family_id");
CREATE INDEX "attesto_refresh_tokens_expires_at_index" ON "attesto_refresh_tokens" ("expires_at");
CREATE TABLE "attesto_refresh_family_revocations" ("family_id" varchar(255) NOT NULL, "revoked_at" timestamp(0) NOT NULL, PRIMARY KEY ("family_id"));
CREATE TABLE "dpop_nonces" ("id" uuid, "nonce" varchar(255) NOT NULL, "issued_at" timestamp(0) NOT NULL, "expires_at" timestamp(0) NOT NULL, "used_at" timestamp(0), PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "dpop_nonces_nonce_index" ON "dpop_nonces" ("nonce");
CREATE INDEX "dpop_nonces_unused_index" ON "dpop_nonces" ("used_at") WHERE used_at IS NULL;
CREATE TABLE "dpop_replays" ("jti" varchar(255) NOT NULL, "expires_at" timestamp NOT NULL, "inserted_at" timestamp NOT NULL, PRIMARY KEY ("jti"));
CREATE INDEX "dpop_replays_expires_at_index" ON "dpop_replays" ("expires_at");
SQL
# ---- ATTESTO-PG 1.3, verbatim: Down (the five tables' part) ----
cat >"$T/ref-down-1.3.sql" <<'SQL'
DROP TABLE "dpop_replays"; DROP TABLE "dpop_nonces";
DROP TABLE "attesto_refresh_family_revocations"; DROP TABLE "attesto_refresh_tokens";
DROP TABLE "attesto_authorization_codes";
SQL
sed 's/; /;\n/g' "$T/ref-down-1.3.sql" >"$T/ref-down.sql"

# The reference with 1.4's table prefix: every table and index name (the
# quoted names that begin attesto_ or dpop_; no column does).
table_prefix() { sed "s/\"\\(attesto_\\|dpop_\\)/\"$1\\1/g"; }
# The reference with 1.3's schema: tables qualified, index names bare.
qualify() { sed "s/^CREATE TABLE \"/CREATE TABLE \"$1\".\"/; s/ ON \"/ ON \"$1\".\"/; s/^DROP TABLE \"/DROP TABLE \"$1\".\"/"; }
# What the tool must print for the reference text on stdin.
wrapped() { # SCHEMA|- UP|DOWN
	echo "BEGIN;"
	[ "$1" != - ] && [ "$2" = UP ] && echo "CREATE SCHEMA IF NOT EXISTS \"$1\";"
	cat
	echo "COMMIT;"
}

# ---- the tool alone ----

"$ONCESTORE" schema --help >"$T/help" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "do not run this output at all" "$T/help" &&
	grep -q "schema_migrations" "$T/help" && grep -q "never both" "$T/help"; then
	ok "--help says what to do when AttestoPhoenix's migration owns the tables"
else
	not_ok "--help says what to do when AttestoPhoenix's migration owns the tables" "rc=$rc" "$(cat "$T/help")"
fi

# expect_output DESCRIPTION EXPECTED-FILE ARGS...
expect_output() {
	local what=$1 want=$2
	shift 2
	if "$ONCESTORE" schema "$@" >"$T/got" 2>"$T/err"; then
		same "$what" "$want" "$T/got"
	else
		not_ok "$what" "exit $?: $(cat "$T/err")"
	fi
}
wrapped - UP <"$T/ref-up.sql" >"$T/want"
expect_output "no prefix: ATTESTO-PG 1.2 byte for byte, in BEGIN/COMMIT" "$T/want"
expect_output "--only-oncestore: the same five tables" "$T/want" --only-oncestore
qualify auth <"$T/ref-up.sql" | wrapped auth UP >"$T/want"
expect_output "--schema-prefix auth: CREATE SCHEMA first, tables qualified, index names bare" "$T/want" \
	--schema-prefix auth
table_prefix oauth_ <"$T/ref-up.sql" | wrapped - UP >"$T/want"
expect_output "--table-prefix oauth_: table and index names prefixed" "$T/want" --table-prefix oauth_
table_prefix oauth_ <"$T/ref-up.sql" | qualify auth | wrapped auth UP >"$T/want"
expect_output "--schema-prefix and --table-prefix together" "$T/want" --table-prefix=oauth_ \
	--schema-prefix=auth
wrapped - DOWN <"$T/ref-down.sql" >"$T/want"
expect_output "--down: ATTESTO-PG 1.3's drops, last created first" "$T/want" --down
table_prefix oauth_ <"$T/ref-down.sql" | qualify auth | wrapped auth DOWN >"$T/want"
expect_output "--down with both prefixes: never drops the schema" "$T/want" --down --schema-prefix auth \
	--table-prefix oauth_

# refused ARGS... -- MESSAGE: exit 2, that message, nothing on stdout.
refused() {
	local args=() msg
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	msg=$2
	"$ONCESTORE" schema "${args[@]}" >"$T/got" 2>"$T/err"
	local rc=$?
	if [ $rc -eq 2 ] && [ ! -s "$T/got" ] && grep -qxF "oncestore schema: $msg" "$T/err"; then
		ok "refused with exit 2: ${args[*]}"
	else
		not_ok "refused with exit 2: ${args[*]}" "rc=$rc, want: $msg" "stderr: $(cat "$T/err")" \
			"stdout: $(head -3 "$T/got")"
	fi
}
rule='must match ^[a-z_][a-z0-9_]*$ (lowercase letters, digits, underscores; not a digit first)'
long64=$(printf 'a%.0s' $(seq 64))
refused --schema-prefix Auth -- "--schema-prefix \"Auth\": $rule"
refused --schema-prefix 1auth -- "--schema-prefix \"1auth\": $rule"
refused --schema-prefix 'a"b' -- "--schema-prefix \"a\"b\": $rule"
refused --schema-prefix "" -- "--schema-prefix \"\": $rule"
refused --schema-prefix "$long64" -- "--schema-prefix \"$long64\": is longer than 63 bytes (PostgreSQL would truncate it)"
refused --schema-prefix information_schema -- "--schema-prefix \"information_schema\": is information_schema, which PostgreSQL reserves"
refused --schema-prefix pg_auth -- "--schema-prefix \"pg_auth\": begins with pg_, which PostgreSQL reserves for system schemas"
refused --table-prefix OAuth_ -- "--table-prefix \"OAuth_\": $rule"
refused --table-prefix= -- "--table-prefix \"\": $rule"
refused --table-prefix abcdefghijklmn -- "--table-prefix \"abcdefghijklmn\": makes a 64-byte index name; PostgreSQL truncates names past 63 bytes (at most 13 bytes of prefix)"
refused --schema-prefix -- "--schema-prefix needs a value"
refused --schema-prefix a --schema-prefix b -- "--schema-prefix given twice"
refused --drop -- "unknown option --drop"
refused postgres:///x -- "takes no argument (got postgres:///x): it prints DDL, connecting to nothing"

# ---- against the server ----

# The connection string for database $1 on ONCE_TEST_POSTGRES's server: a
# later dbname overrides the first (a URI takes it as a parameter).
conn_for() {
	case "$ONCE_TEST_POSTGRES" in
	*://*\?*) echo "$ONCE_TEST_POSTGRES&dbname=$1" ;;
	*://*) echo "$ONCE_TEST_POSTGRES?dbname=$1" ;;
	*) echo "$ONCE_TEST_POSTGRES dbname=$1" ;;
	esac
}
# new_db NAME: a new empty database; its connection string in $DB.
new_db() {
	local db="once_schema_$$_$1"
	DBS+=("$db")
	"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$ONCE_TEST_POSTGRES" \
		-c "DROP DATABASE IF EXISTS \"$db\"" -c "CREATE DATABASE \"$db\"" >/dev/null 2>"$T/err" ||
		{ echo "Bail out! cannot create database $db: $(cat "$T/err")"; exit 1; }
	DB=$(conn_for "$db")
}
apply() { # CONN < SQL
	"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$1" >/dev/null 2>"$T/err"
}
# The schema as pg_dump prints it, without comments and blank lines (the
# dump's header names the database) and without the \restrict lines newer
# pg_dump releases wrap a dump in (a random key each time).
dump() { # CONN [pg_dump options]
	local c=$1
	shift
	"$PG_DUMP" --schema-only -d "$c" "$@" 2>"$T/dump-err" | grep -v -e '^--' -e '^$' -e '^\\\(un\)\?restrict '
}

# round_trip NAME SCHEMA|- PREFIX|- : up applies cleanly; its tables dump
# exactly like the reference applied by hand; a second up fails as a whole;
# down leaves the database as it was (the schema stays, and is empty).
round_trip() {
	local name=$1 schema=$2 prefix=$3 args=() what
	[ "$schema" != - ] && args+=(--schema-prefix "$schema")
	[ "$prefix" != - ] && args+=(--table-prefix "$prefix")
	what="${args[*]:-no prefix}"
	local tool ref
	new_db "${name}_tool"
	tool=$DB
	new_db "${name}_ref"
	ref=$DB
	dump "$tool" >"$T/before"

	"$ONCESTORE" schema "${args[@]}" >"$T/up.sql"
	if apply "$tool" <"$T/up.sql"; then
		ok "$what: applies with psql -v ON_ERROR_STOP=1"
	else
		not_ok "$what: applies with psql -v ON_ERROR_STOP=1" "$(cat "$T/err")"
	fi

	# By hand: 1.2's statements; under a schema through search_path, which
	# is what Ecto's prefix: does to unqualified names; 1.4's prefix by sed.
	{
		if [ "$schema" != - ]; then
			echo "CREATE SCHEMA \"$schema\";"
			echo "SET search_path = \"$schema\";"
		fi
		if [ "$prefix" != - ]; then table_prefix "$prefix" <"$T/ref-up.sql"; else cat "$T/ref-up.sql"; fi
	} >"$T/by-hand.sql"
	apply "$ref" <"$T/by-hand.sql" || not_ok "$what: the reference applies" "$(cat "$T/err")"
	dump "$tool" >"$T/dump-tool"
	dump "$ref" >"$T/dump-ref"
	local tables indexes pkeys
	tables=$(grep -c '^CREATE TABLE ' "$T/dump-tool")
	indexes=$(grep -c '^CREATE \(UNIQUE \)\?INDEX ' "$T/dump-tool")
	pkeys=$(grep -c 'ADD CONSTRAINT .*_pkey PRIMARY KEY' "$T/dump-tool")
	if [ "$tables/$indexes/$pkeys" != 5/10/5 ]; then
		not_ok "$what: pg_dump shows 5 tables, 10 indexes, 5 primary keys" "got $tables/$indexes/$pkeys"
	else
		same "$what: pg_dump of the tables equals pg_dump of ATTESTO-PG 1.2 applied by hand" \
			"$T/dump-ref" "$T/dump-tool"
	fi

	# Ecto runs the migration in one transaction: so does this output.
	if apply "$tool" <"$T/up.sql"; then
		not_ok "$what: applying it twice fails"
	else
		dump "$tool" >"$T/again"
		same "$what: a failed second up changes nothing (one transaction)" "$T/dump-tool" "$T/again"
	fi

	"$ONCESTORE" schema --down "${args[@]}" >"$T/down.sql"
	if ! apply "$tool" <"$T/down.sql"; then
		not_ok "$what: --down applies" "$(cat "$T/err")"
		return
	fi
	if [ "$schema" != - ]; then
		# Still there (down never drops it), and empty (no CASCADE).
		if ! apply "$tool" <<<"DROP SCHEMA \"$schema\";"; then
			not_ok "$what: --down keeps the schema, empty" "$(cat "$T/err")"
			return
		fi
	fi
	dump "$tool" >"$T/after"
	same "$what: --down leaves the database as it was (full pg_dump --schema-only)" "$T/before" "$T/after"
}

round_trip plain - -
round_trip schema auth -
round_trip prefix - oauth_
round_trip both auth oauth_

# The longest prefix allowed makes a 63-byte index name, kept whole.
new_db longest
if "$ONCESTORE" schema --table-prefix abcdefghijklm | apply "$DB" &&
	dump "$DB" | grep -q '^CREATE INDEX abcdefghijklmattesto_authorization_codes_access_token_jti_index ON '; then
	ok "a 13-byte prefix: the 63-byte index name is created whole"
else
	not_ok "a 13-byte prefix: the 63-byte index name is created whole" "$(cat "$T/err")"
fi

echo "1..$n"
[ $failed -eq 0 ]
