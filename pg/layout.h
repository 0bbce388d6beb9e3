/*
 * pg/layout.h - the tables' DDL and the rules for the names in it, for
 * `oncestore schema` (tools/schema.c) and once_open's checks of the
 * pg_schema and pg_table_prefix options.  The layout check itself and the
 * table names are declared in pg/pg.h.
 */
#ifndef ONCE_PG_LAYOUT_H
#define ONCE_PG_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "oncestore.h"

/* NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers, so
 * two long index names could collide or differ from AttestoPhoenix's. */
#define ONCE_PG_IDENTIFIER_MAX 63

/* Room for any message the two checks below write. */
#define ONCE_PG_NAME_PROBLEM_MAX 256

/*
 * Whether schema may name the tables' schema: AttestoPhoenix's
 * --schema-prefix rule (ATTESTO-PG 1.3): ^[a-z_][a-z0-9_]*$, at most 63
 * bytes, not information_schema, not pg_*.  false with why (a sentence
 * without the name itself) in why[ONCE_PG_NAME_PROBLEM_MAX].
 */
bool once__pg_schema_valid(const char *schema, char why[ONCE_PG_NAME_PROBLEM_MAX]);

/*
 * Whether prefix may be prepended to the table names (the 2.x generator's
 * --table-prefix, ATTESTO-PG 1.4): ^[a-z_][a-z0-9_]*$, and every table,
 * index and primary-key name it makes at most 63 bytes.  false with why in
 * why[ONCE_PG_NAME_PROBLEM_MAX].
 */
bool once__pg_table_prefix_valid(const char *prefix, char why[ONCE_PG_NAME_PROBLEM_MAX]);

/*
 * The five tables' DDL exactly as Ecto emits it (ATTESTO-PG 1.2), one
 * statement a line, in one BEGIN; ... COMMIT; (section 6.16: Ecto runs a
 * migration in one transaction).  schema (NULL: none) adds
 * CREATE SCHEMA IF NOT EXISTS first and qualifies every table (index names
 * stay bare, section 1.3); prefix (NULL or "": none) is prepended to table
 * and index names (section 1.4).  down: DROP TABLE in reverse order, never
 * the schema.  *out is malloc'd and NUL-terminated, untouched on failure.
 * ONCE_OK | ONCE_INVALID (a name the checks above refuse) | ONCE_NOMEM.
 */
once_status once__pg_ddl(const char *schema, const char *prefix, bool down, char **out);

#endif /* ONCE_PG_LAYOUT_H */
