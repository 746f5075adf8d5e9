/*
 * commands.h - the subcommands of the ehr program, one file each in src/cli/.
 *
 * Each takes the arguments after the command name's position (argv[0] is
 * the command name, "validate") and returns the process exit status.
 */
#ifndef EHR_CLI_COMMANDS_H
#define EHR_CLI_COMMANDS_H

/*
 * ehr validate [--type TYPE] [--no-bindings] [--max-issues N] FILE...
 * Exit 0 when every file is valid FHIR R4, 1 when some file has errors
 * (each issue printed as "FILE: error: LOCATION: message"), 2 when a file
 * can't be read or isn't JSON, or on a usage error.
 */
int ehr_cmd_validate(int argc, char **argv);

/* ehr serve [--port N] [--db PATH] ...: the HTTP server (see --help). */
int ehr_cmd_serve(int argc, char **argv);

/* ehr demo [--db PATH]: load the demo patients (idempotent). */
int ehr_cmd_demo(int argc, char **argv);

/* ehr user add|list|disable|enable|reset-password|reset-mfa|link|unlink (see --help). */
int ehr_cmd_user(int argc, char **argv);

/* ehr client add|list: SMART apps. */
int ehr_cmd_client(int argc, char **argv);

/* ehr token --user U --scope S: an access token, on the last line of the output. */
int ehr_cmd_token(int argc, char **argv);

/* ehr audit verify|report: the hash-chained audit log. */
int ehr_cmd_audit(int argc, char **argv);

/*
 * ehr fhirpath [--var NAME=JSON]... [--type TYPE] [--now INSTANT] EXPRESSION FILE
 * Prints the result collection as a JSON array. Exit 0 on success, 1 on an
 * error in the expression or while evaluating it, 2 for an unreadable file,
 * bad JSON or a usage error.
 */
int ehr_cmd_fhirpath(int argc, char **argv);

/* ehr reindex [--db PATH]: rebuild every resource's search index rows (progress on a tty). */
int ehr_cmd_reindex(int argc, char **argv);

/*
 * ehr import [STORE] [--jobs N] PATH... | ehr import --url URL [--token T] PATH...
 * Bundles, NDJSON and folders of them, each Bundle one transaction. Exit 0
 * when everything loaded, 1 when something failed (each failure printed
 * with its file and line or entry), 2 on a usage error.
 */
int ehr_cmd_import(int argc, char **argv);

/*
 * ehr export [STORE] [--type T,...] [--since INSTANT] --out DIR
 * NDJSON per resource type. Exit 0 on success, 1 on a failure (named), 2
 * on a usage error.
 */
int ehr_cmd_export(int argc, char **argv);
/* ehr hl7 list|show|reprocess|send: stored HL7 v2 messages; an MLLP client (see --help). */
int ehr_cmd_hl7(int argc, char **argv);

/* ehr migrate --from SQLITE_PATH --to CONNINFO [--verify-only]: SQLite to PostgreSQL. */
int ehr_cmd_migrate(int argc, char **argv);

#endif
