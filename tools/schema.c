/*
 * tools/schema.c - `oncestore schema`: prints the DDL of the five tables
 * the PostgreSQL engine runs on (pg/layout.c holds their one description;
 * ATTESTO-PG 1.2-1.4 and 6.16 say why it looks the way it does).  It
 * connects to nothing: the output is for psql, or for a reviewer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "layout.h"

static const char schema_usage[] =
	"oncestore schema [--schema-prefix S] [--table-prefix P] [--down] [--only-oncestore]";
static const char schema_help[] =
	"Prints the DDL of the five tables the PostgreSQL engine uses\n"
	"(once_options.postgres), exactly as AttestoPhoenix 3.5.1's generated\n"
	"migration creates them: attesto_authorization_codes, attesto_refresh_tokens,\n"
	"attesto_refresh_family_revocations, dpop_nonces and dpop_replays, with their\n"
	"indexes, in one BEGIN; ... COMMIT;.  It connects to nothing; apply it with\n"
	"  oncestore schema | psql -v ON_ERROR_STOP=1 \"$DATABASE\"\n"
	"once_open never creates or alters tables: it checks that these exist with\n"
	"these columns and names what is missing.\n"
	"\n"
	"  --schema-prefix S  the tables in PostgreSQL schema S (AttestoPhoenix's\n"
	"                     --schema-prefix; open with pg_schema = S): CREATE SCHEMA\n"
	"                     IF NOT EXISTS \"S\" first, then \"S\".\"table\"; index names\n"
	"                     stay unprefixed.  S must match ^[a-z_][a-z0-9_]*$, be at\n"
	"                     most 63 bytes, and be neither information_schema nor pg_*.\n"
	"  --table-prefix P   P prepended to every table and index name (the 2.x\n"
	"                     generator's --table-prefix; open with pg_table_prefix = P).\n"
	"                     AttestoPhoenix 3.x has no such option and its nodes use the\n"
	"                     unprefixed names, so no AttestoPhoenix node can share such\n"
	"                     tables.  P must match ^[a-z_][a-z0-9_]*$ and keep every name\n"
	"                     within 63 bytes (at most 13 bytes of prefix).\n"
	"  --down             the reverse: DROP TABLE of the five, last created first,\n"
	"                     which deletes every credential in them.  The schema is\n"
	"                     never dropped.\n"
	"  --only-oncestore   the five tables only.  This is the default and the only\n"
	"                     output: AttestoPhoenix's six other tables (device codes,\n"
	"                     CIBA, logout sessions, PAR, CIMD cache, consent grants)\n"
	"                     come from its own migration.\n"
	"\n"
	"When AttestoPhoenix shares the database, exactly one migration must create\n"
	"these tables, never both (ATTESTO-PG 6.16):\n"
	"  - AttestoPhoenix's migration (mix attesto_phoenix.gen.migration, then\n"
	"    mix ecto.migrate) owns them: do not run this output at all.  oncestore\n"
	"    only needs the tables to exist; open it with the same schema prefix.\n"
	"  - This output created them first: AttestoPhoenix's migration would fail on\n"
	"    tables that already exist, and Ecto's schema_migrations records only its\n"
	"    own migrations.  Mark that migration as run before `mix ecto.migrate`:\n"
	"      INSERT INTO schema_migrations (version, inserted_at)\n"
	"      VALUES (<the migration file's timestamp>, now() AT TIME ZONE 'UTC');\n"
	"    It then creates none of its six other tables either: create those from\n"
	"    its file by hand if the nodes use those features.\n"
	"\n"
	"Exit status: 0 printed; 1 out of memory or stdout failed; 2 usage error\n"
	"(an unknown option, or a schema or prefix refused, with the reason).\n";

static int usage_error(void)
{
	fprintf(stderr, "usage: %s\n", schema_usage);
	return CLI_USAGE;
}

/* --name VALUE or --name=VALUE at argv[*i]; advances *i past a separate
 * value.  Returns 1 when matched (*value set), 0 when not this option, -1
 * on a usage error (printed). */
static int option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
		return 0;
	const char *v = a[n] == '=' ? a + n + 1 : NULL;
	if (v == NULL) {
		if (*i + 1 >= argc) {
			cli_err("schema", "%s needs a value", name);
			return -1;
		}
		v = argv[++*i];
	}
	if (*value != NULL) {
		cli_err("schema", "%s given twice", name);
		return -1;
	}
	*value = v;
	return 1;
}

int cli_schema(int argc, char **argv)
{
	const char *schema = NULL, *prefix = NULL;
	bool down = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("usage: %s\n\n%s", schema_usage, schema_help);
			return CLI_OK;
		}
		int m = option_value(argc, argv, &i, "--schema-prefix", &schema);
		if (m == 0)
			m = option_value(argc, argv, &i, "--table-prefix", &prefix);
		if (m < 0)
			return usage_error();
		if (m > 0)
			continue;
		if (strcmp(a, "--down") == 0) {
			down = true;
		} else if (strcmp(a, "--only-oncestore") == 0) {
			/* The default: the five tables are all this tool knows. */
		} else {
			if (a[0] == '-')
				cli_err("schema", "unknown option %s", a);
			else
				cli_err("schema", "takes no argument (got %s): it prints DDL, connecting to nothing",
				        a);
			return usage_error();
		}
	}
	char why[ONCE_PG_NAME_PROBLEM_MAX];
	if (schema != NULL && !once__pg_schema_valid(schema, why)) {
		cli_err("schema", "--schema-prefix \"%s\": %s", schema, why);
		return usage_error();
	}
	if (prefix != NULL && !once__pg_table_prefix_valid(prefix, why)) {
		cli_err("schema", "--table-prefix \"%s\": %s", prefix, why);
		return usage_error();
	}
	char *ddl;
	once_status st = once__pg_ddl(schema, prefix, down, &ddl);
	if (st != ONCE_OK) {
		cli_err("schema", "ONCE_%s: %s", once_status_name(st), once_strerror(st));
		return CLI_FAIL;
	}
	fputs(ddl, stdout);
	free(ddl);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("oncestore schema: stdout");
		return CLI_FAIL;
	}
	return CLI_OK;
}
