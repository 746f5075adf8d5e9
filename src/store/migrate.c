/*
 * migrate.c - SQLite to PostgreSQL (see migrate.h).
 *
 * Every table of the SQLite schema is copied to the table of the same
 * name in PostgreSQL with COPY, columns by name, so tables added by later
 * migrations on both sides are carried without changes here. Serial keys
 * (resource.rid, current.key) are copied as they are and the sequences
 * moved past them.
 */
#include "store/migrate.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/store.h"

#define MAX_TYPES 512

struct type_sum {
    char type[64];
    int64_t versions, live;
    EVP_MD_CTX *md;
    char hash[65];
};

struct summary {
    size_t n;
    struct type_sum t[MAX_TYPES];
    int64_t audit_n, objects;
    char audit_head[65];
};

static void summary_free(struct summary *s)
{
    for (size_t i = 0; i < s->n; i++)
        EVP_MD_CTX_free(s->t[i].md);
}

static struct type_sum *sum_type(struct summary *s, const char *type)
{
    for (size_t i = s->n; i > 0; i--)
        if (!strcmp(s->t[i - 1].type, type))
            return &s->t[i - 1];
    if (s->n == MAX_TYPES)
        return NULL;
    struct type_sum *t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->type, sizeof t->type, "%s", type);
    t->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(t->md, EVP_sha256(), NULL);
    return t;
}

/* One version into its type's digest. */
static ehr_status sum_row(struct summary *s, const char *type, const char *id, int64_t version,
                          int64_t updated, bool deleted, const char *method, const void *content,
                          size_t len)
{
    struct type_sum *t = sum_type(s, type);
    if (!t || !t->md)
        return EHR_ELIMIT;
    char head[512];
    int n = snprintf(head, sizeof head, "%s|%s|%" PRId64 "|%" PRId64 "|%d|%s|%zu|", type, id,
                     version, updated, deleted ? 1 : 0, method ? method : "", len);
    EVP_DigestUpdate(t->md, head, (size_t)n < sizeof head ? (size_t)n : sizeof head - 1);
    if (content)
        EVP_DigestUpdate(t->md, content, len);
    t->versions++;
    return EHR_OK;
}

static void sum_finish(struct summary *s)
{
    for (size_t i = 0; i < s->n; i++) {
        unsigned char md[32];
        unsigned int ml = 0;
        EVP_DigestFinal_ex(s->t[i].md, md, &ml);
        for (int k = 0; k < 32; k++)
            snprintf(s->t[i].hash + 2 * k, 3, "%02x", md[k]);
    }
}

static ehr_status sq_err(sqlite3 *db, ehr_err *err, const char *what)
{
    return ehr_err_set(err, EHR_EIO, "%s (SQLite): %s", what, sqlite3_errmsg(db));
}

static ehr_status pq_err(PGconn *pg, PGresult *r, ehr_err *err, const char *what)
{
    char m[300];
    snprintf(m, sizeof m, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    m[strcspn(m, "\n")] = '\0';
    PQclear(r);
    return ehr_err_set(err, EHR_EIO, "%s (PostgreSQL): %s", what, m);
}

/* A one-value query on each side. */
static int64_t sq_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t pq_int(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int64_t v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static ehr_status summarise_sqlite(sqlite3 *db, struct summary *s, ehr_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT type, id, version, last_updated, deleted, method, content "
                           "FROM resource ORDER BY type, id, version",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_err(db, err, "reading resources");
    int rc;
    ehr_status res = EHR_OK;
    while (!res && (rc = sqlite3_step(st)) == SQLITE_ROW)
        res = sum_row(s, (const char *)sqlite3_column_text(st, 0),
                      (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2),
                      sqlite3_column_int64(st, 3), sqlite3_column_int(st, 4) != 0,
                      (const char *)sqlite3_column_text(st, 5), sqlite3_column_blob(st, 6),
                      (size_t)sqlite3_column_bytes(st, 6));
    sqlite3_finalize(st);
    if (res)
        return ehr_err_set(err, res, "more than %d resource types", MAX_TYPES);
    if (rc != SQLITE_DONE)
        return sq_err(db, err, "reading resources");
    if (sqlite3_prepare_v2(db, "SELECT type, count(*) FROM current WHERE deleted = 0 GROUP BY type",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_err(db, err, "counting resources");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct type_sum *t = sum_type(s, (const char *)sqlite3_column_text(st, 0));
        if (t)
            t->live = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    s->audit_n = sq_int(db, "SELECT count(*) FROM audit");
    s->objects = sq_int(db, "SELECT count(*) FROM auth_object");
    if (sqlite3_prepare_v2(db, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(s->audit_head, sizeof s->audit_head, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return EHR_OK;
}

static ehr_status summarise_pg(PGconn *pg, struct summary *s, ehr_err *err)
{
    /* streamed a row at a time: memory stays flat on a large database */
    if (!PQsendQuery(pg, "SELECT type, id, version, last_updated, deleted, method, content "
                         "FROM resource ORDER BY type, id, version") ||
        !PQsetSingleRowMode(pg))
        return pq_err(pg, NULL, err, "reading resources");
    PGresult *r;
    ehr_status res = EHR_OK;
    while ((r = PQgetResult(pg))) {
        ExecStatusType k = PQresultStatus(r);
        if (k == PGRES_SINGLE_TUPLE && !res)
            res = sum_row(s, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                          strtoll(PQgetvalue(r, 0, 2), NULL, 10),
                          strtoll(PQgetvalue(r, 0, 3), NULL, 10), PQgetvalue(r, 0, 4)[0] == 't',
                          PQgetvalue(r, 0, 5), PQgetisnull(r, 0, 6) ? NULL : PQgetvalue(r, 0, 6),
                          (size_t)PQgetlength(r, 0, 6));
        else if (k != PGRES_TUPLES_OK && k != PGRES_SINGLE_TUPLE && !res) {
            char m[300];
            snprintf(m, sizeof m, "%s", PQresultErrorMessage(r));
            m[strcspn(m, "\n")] = '\0';
            res = ehr_err_set(err, EHR_EIO, "reading resources (PostgreSQL): %s", m);
        }
        PQclear(r);
    }
    if (res)
        return res == EHR_ELIMIT ? ehr_err_set(err, res, "more than %d resource types", MAX_TYPES)
                                 : res;
    r = PQexec(pg, "SELECT type, count(*) FROM current WHERE NOT deleted GROUP BY type");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return pq_err(pg, r, err, "counting resources");
    for (int i = 0; i < PQntuples(r); i++) {
        struct type_sum *t = sum_type(s, PQgetvalue(r, i, 0));
        if (t)
            t->live = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
    s->audit_n = pq_int(pg, "SELECT count(*) FROM audit");
    s->objects = pq_int(pg, "SELECT count(*) FROM auth_object");
    r = PQexec(pg, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(s->audit_head, sizeof s->audit_head, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return EHR_OK;
}

/* Append v to b in COPY text format. */
static ehr_status copy_field(ehr_buf *b, const unsigned char *v, size_t n)
{
    ehr_status st = EHR_OK;
    for (size_t i = 0; !st && i < n; i++) {
        switch (v[i]) {
        case '\\':
            st = ehr_buf_puts(b, "\\\\");
            break;
        case '\t':
            st = ehr_buf_puts(b, "\\t");
            break;
        case '\n':
            st = ehr_buf_puts(b, "\\n");
            break;
        case '\r':
            st = ehr_buf_puts(b, "\\r");
            break;
        default:
            st = ehr_buf_putc(b, (char)v[i]);
        }
    }
    return st;
}

static ehr_status copy_table(sqlite3 *db, PGconn *pg, const char *table, FILE *progress,
                             ehr_err *err)
{
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT to_regclass('public.%s') IS NOT NULL", table);
    PGresult *r = PQexec(pg, sql);
    bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return ehr_err_set(err, EHR_EUNSUPPORTED,
                           "table %s of the SQLite database has no PostgreSQL counterpart", table);
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_err(db, err, "reading a table");
    int ncol = sqlite3_column_count(st);
    /* which target columns are bytea: their values go as hex (\\x...) */
    bool bytea[64] = {0};
    for (int i = 0; i < ncol && i < 64; i++) {
        const char *vals[] = {table, sqlite3_column_name(st, i)};
        r = PQexecParams(pg,
                         "SELECT data_type = 'bytea' FROM information_schema.columns WHERE "
                         "table_schema = 'public' AND table_name = $1 AND column_name = $2",
                         2, NULL, vals, NULL, NULL, 0);
        bytea[i] = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                   PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
    }
    if (ncol > 64) {
        sqlite3_finalize(st);
        return ehr_err_set(err, EHR_ELIMIT, "table %s has more than 64 columns", table);
    }
    /* rows a migration seeds (audit_journal's mark) give way to the copied
       ones; the target holds no data (copy_all checked) */
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", table);
    r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        sqlite3_finalize(st);
        return pq_err(pg, r, err, "clearing a table");
    }
    PQclear(r);
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_printf(&b, "COPY %s(", table);
    for (int i = 0; i < ncol; i++)
        ehr_buf_printf(&b, "%s\"%s\"", i ? ", " : "", sqlite3_column_name(st, i));
    ehr_buf_puts(&b, ") FROM STDIN");
    r = PQexec(pg, b.data ? b.data : "");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        ehr_buf_free(&b);
        sqlite3_finalize(st);
        return pq_err(pg, r, err, "starting a copy");
    }
    PQclear(r);
    ehr_buf_reset(&b);
    int64_t rows = 0;
    int rc;
    ehr_status res = EHR_OK;
    while (!res && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; !res && i < ncol; i++) {
            if (i)
                res = ehr_buf_putc(&b, '\t');
            int t = sqlite3_column_type(st, i);
            if (res)
                break;
            if (t == SQLITE_NULL) {
                res = ehr_buf_puts(&b, "\\N");
            } else if (bytea[i]) {
                const unsigned char *v = sqlite3_column_blob(st, i);
                int n = sqlite3_column_bytes(st, i);
                res = ehr_buf_puts(&b, "\\\\x");
                for (int k = 0; !res && k < n; k++)
                    res = ehr_buf_printf(&b, "%02x", v[k]);
            } else if (t == SQLITE_FLOAT) {
                res = ehr_buf_printf(&b, "%.17g", sqlite3_column_double(st, i));
            } else {
                const unsigned char *v =
                    t == SQLITE_BLOB ? sqlite3_column_blob(st, i) : sqlite3_column_text(st, i);
                res = copy_field(&b, v, (size_t)sqlite3_column_bytes(st, i));
            }
        }
        if (!res)
            res = ehr_buf_putc(&b, '\n');
        rows++;
        if (!res && b.len >= 1 << 20) {
            if (PQputCopyData(pg, b.data, (int)b.len) != 1)
                res = pq_err(pg, NULL, err, "copying");
            ehr_buf_reset(&b);
        }
        if (progress && rows % 50000 == 0)
            fprintf(progress, "  %s: %" PRId64 " rows\n", table, rows);
    }
    if (!res && rc != SQLITE_DONE)
        res = sq_err(db, err, "reading a table");
    if (res == EHR_ENOMEM)
        ehr_err_set(err, res, "out of memory");
    if (!res && b.len && PQputCopyData(pg, b.data, (int)b.len) != 1)
        res = pq_err(pg, NULL, err, "copying");
    ehr_buf_free(&b);
    sqlite3_finalize(st);
    PQputCopyEnd(pg, res ? "the copy failed" : NULL);
    while ((r = PQgetResult(pg))) {
        if (!res && PQresultStatus(r) != PGRES_COMMAND_OK) {
            res = pq_err(pg, r, err, "copying");
            continue;
        }
        PQclear(r);
    }
    if (!res && progress)
        fprintf(progress, "  %s: %" PRId64 " rows copied\n", table, rows);
    return res;
}

static ehr_status copy_all(sqlite3 *db, PGconn *pg, FILE *progress, ehr_err *err)
{
    int64_t n = pq_int(pg, "SELECT (SELECT count(*) FROM resource) + (SELECT count(*) FROM audit)"
                           " + (SELECT count(*) FROM auth_object)");
    if (n != 0)
        return ehr_err_set(err, EHR_EEXISTS,
                           n < 0 ? "cannot read the target database"
                                 : "the target database is not empty (it holds resources, audit "
                                   "records or users); migrate into a new database");
    PGresult *r = PQexec(pg, "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return pq_err(pg, r, err, "starting the copy");
    PQclear(r);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL); /* one snapshot of the source */
    sqlite3_stmt *st = NULL;
    ehr_status res = EHR_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                           "name NOT LIKE 'sqlite_%' ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        res = sq_err(db, err, "listing tables");
    char tables[64][64];
    int nt = 0;
    while (!res && nt < 64 && sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        /* the full-text index (FTS5 and its shadow tables) is SQLite's own
           layout: rebuilt on PostgreSQL by `ehr reindex` */
        if (!strncmp(t, "idx_text", 8))
            continue;
        snprintf(tables[nt++], sizeof tables[0], "%s", t);
    }
    sqlite3_finalize(st);
    for (int i = 0; !res && i < nt; i++)
        res = copy_table(db, pg, tables[i], progress, err);
    /* serial keys (resource.rid, current.key, hl7_message.id, ...): each
       sequence continues after the copied values */
    r = res ? NULL
            : PQexec(pg, "SELECT table_name, column_name FROM information_schema.columns WHERE "
                         "table_schema = 'public' AND column_default LIKE 'nextval(%'");
    if (r && PQresultStatus(r) != PGRES_TUPLES_OK)
        res = pq_err(pg, r, err, "listing sequences");
    else if (r) {
        for (int i = 0; !res && i < PQntuples(r); i++) {
            const char *t = PQgetvalue(r, i, 0), *col = PQgetvalue(r, i, 1);
            char sql[400];
            snprintf(sql, sizeof sql,
                     "SELECT setval(pg_get_serial_sequence('%s', '%s'), "
                     "(SELECT coalesce(max(\"%s\"), 0) + 1 FROM \"%s\"), false)",
                     t, col, col, t);
            PGresult *x = PQexec(pg, sql);
            if (PQresultStatus(x) != PGRES_TUPLES_OK)
                res = pq_err(pg, x, err, "moving a sequence");
            else
                PQclear(x);
        }
        PQclear(r);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    r = PQexec(pg, res ? "ROLLBACK" : "COMMIT");
    if (!res && PQresultStatus(r) != PGRES_COMMAND_OK)
        return pq_err(pg, r, err, "committing the copy");
    PQclear(r);
    return res;
}

static ehr_status compare(const struct summary *a, const struct summary *b, FILE *out, ehr_err *err)
{
    ehr_status res = EHR_OK;
    if (out)
        fprintf(out, "%-28s %10s %10s  %-16s %s\n", "type", "versions", "live", "sha256", "check");
    for (size_t i = 0; i < a->n; i++) {
        const struct type_sum *x = &a->t[i], *y = NULL;
        for (size_t j = 0; j < b->n; j++)
            if (!strcmp(b->t[j].type, x->type))
                y = &b->t[j];
        bool ok =
            y && x->versions == y->versions && x->live == y->live && !strcmp(x->hash, y->hash);
        if (out)
            fprintf(out, "%-28s %10" PRId64 " %10" PRId64 "  %.16s %s\n", x->type, x->versions,
                    x->live, x->hash, ok ? "ok" : "DIFFERENT");
        if (!ok && !res)
            res = ehr_err_set(err, EHR_EINVAL,
                              "%s differs: %" PRId64 " versions (%" PRId64 " live) in SQLite, "
                              "%" PRId64 " (%" PRId64 " live) in PostgreSQL%s",
                              x->type, x->versions, x->live, y ? y->versions : 0, y ? y->live : 0,
                              y && x->versions == y->versions ? ", content" : "");
    }
    for (size_t j = 0; j < b->n && !res; j++) {
        bool found = false;
        for (size_t i = 0; i < a->n; i++)
            found = found || !strcmp(a->t[i].type, b->t[j].type);
        if (!found)
            res = ehr_err_set(err, EHR_EINVAL, "PostgreSQL holds %s resources SQLite does not",
                              b->t[j].type);
    }
    bool audit_ok = a->audit_n == b->audit_n && !strcmp(a->audit_head, b->audit_head);
    if (out) {
        fprintf(out, "%-28s %10" PRId64 " %10s  %.16s %s\n", "(audit records)", a->audit_n, "",
                a->audit_head, audit_ok ? "ok" : "DIFFERENT");
        fprintf(out, "%-28s %10" PRId64 " %10s  %16s %s\n", "(users, tokens, sessions)", a->objects,
                "", "", a->objects == b->objects ? "ok" : "DIFFERENT");
    }
    if (!res && !audit_ok)
        res = ehr_err_set(err, EHR_EINVAL,
                          "the audit logs differ: %" PRId64 " records in SQLite, %" PRId64
                          " in PostgreSQL, or another head",
                          a->audit_n, b->audit_n);
    if (!res && a->objects != b->objects)
        res = ehr_err_set(err, EHR_EINVAL,
                          "the module documents differ: %" PRId64 " in SQLite, %" PRId64
                          " in PostgreSQL",
                          a->objects, b->objects);
    return res;
}

ehr_status ehr_store_migrate(const ehr_migrate_opts *o, ehr_err *err)
{
    /* both to the newest schema, as a server would */
    char target[4200];
    ehr_store *s = NULL;
    snprintf(target, sizeof target, "sqlite:%s", o->from);
    ehr_status res = ehr_store_open(target, &s, err);
    ehr_store_close(&s);
    if (res)
        return res;
    snprintf(target, sizeof target, "postgres:%s", o->to);
    if ((res = ehr_store_open(target, &s, err)))
        return res;
    ehr_store_close(&s);

    sqlite3 *db = NULL;
    if (sqlite3_open_v2(o->from, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        res = sq_err(db, err, "opening the source");
        sqlite3_close(db);
        return res;
    }
    sqlite3_busy_timeout(db, 10000);
    PGconn *pg = PQconnectdb(o->to);
    if (PQstatus(pg) != CONNECTION_OK) {
        res = pq_err(pg, NULL, err, "connecting to the target");
        PQfinish(pg);
        sqlite3_close(db);
        return res;
    }
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    if (!o->verify_only) {
        if (o->progress)
            fprintf(o->progress, "copying %s to PostgreSQL\n", o->from);
        res = copy_all(db, pg, o->progress, err);
    }
    struct summary *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    if (!res && (!a || !b))
        res = ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (!res && o->progress && !o->verify_only)
        fprintf(o->progress, "the full-text index (_text, _content) is not copied: run "
                             "`ehr reindex --postgres CONNINFO` to build it\n");
    if (!res && o->progress)
        fprintf(o->progress, "verifying: counts and a checksum per resource type\n");
    if (!res)
        res = summarise_sqlite(db, a, err);
    if (!res)
        res = summarise_pg(pg, b, err);
    if (!res) {
        sum_finish(a);
        sum_finish(b);
        res = compare(a, b, o->progress, err);
    }
    if (a)
        summary_free(a);
    if (b)
        summary_free(b);
    free(a);
    free(b);
    PQfinish(pg);
    sqlite3_close(db);
    return res;
}
