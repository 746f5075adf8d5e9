/*
 * postgres_query.c - the reading side of the PostgreSQL backend: search
 * and history rendered as SQL with bound parameters, compartments, module
 * documents (auth_object) and audit reads.
 *
 * Rendering. A search (store.h, ehr_store_query) becomes one WHERE clause
 * over `current c`: each condition is a semi-join into the index table of
 * its kind (pg_int.h, ehr_pg__kinds), with every value a parameter ($n).
 * The indexes serve the semi-joins: (type, param, value...) btrees, a
 * trigram GIN index for :contains, the "C" collation for prefixes. To
 * support a new kind of condition, add its column test to cond_sql.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/pg_int.h"

const char *const ehr_pg__query_sql[PS_COUNT] = {
    [PS_CURRENT] = "SELECT r.version, r.last_updated, r.deleted, r.method, r.content "
                   "FROM current c JOIN resource r ON r.rid = c.rid "
                   "WHERE c.type = $1::text AND c.id = $2::text",
    [PS_VERSION] = "SELECT version, last_updated, deleted, method, content FROM resource "
                   "WHERE type = $1::text AND id = $2::text AND version = $3::bigint",
    /* the hash as audit_hash in postgres.c: SHA-256 of
       "prev_hash|seq|time|" followed by the event's bytes, in hex */
    [PS_AUDIT_INSERT] =
        "INSERT INTO audit(seq, time, prev_hash, hash, event) "
        "SELECT h.seq + 1, $1::bigint, h.hash, encode(sha256(convert_to(h.hash || '|' || "
        "(h.seq + 1)::text || '|' || $1::bigint::text || '|', 'UTF8') || "
        "convert_to($2::text, 'UTF8')), 'hex'), $2::text FROM (SELECT m.seq, coalesce(a.hash, "
        "'0000000000000000000000000000000000000000000000000000000000000000') AS hash FROM "
        "(SELECT coalesce(max(seq), 0) AS seq FROM audit) m LEFT JOIN audit a ON a.seq = m.seq) h",
    [PS_COMP_CURRENT] = "SELECT v.patient FROM current c JOIN version_compartment v "
                        "ON v.rid = c.rid WHERE c.type = $1::text AND c.id = $2::text "
                        "ORDER BY v.patient",
    [PS_COMP_VERSION] = "SELECT v.patient FROM resource r JOIN version_compartment v "
                        "ON v.rid = r.rid WHERE r.type = $1::text AND r.id = $2::text "
                        "AND r.version = $3::bigint ORDER BY v.patient",
    [PS_VERSION_EXISTS] = "SELECT 1 FROM resource WHERE type = $1::text AND id = $2::text AND "
                          "($3::bigint = 0 OR version = $3::bigint) LIMIT 1",
    [PS_OBJ_GET] = "SELECT doc FROM auth_object WHERE kind = $1::text AND key = $2::text AND "
                   "(expires = 0 OR expires > $3::bigint)",
    [PS_OBJ_INSERT] = "INSERT INTO auth_object(kind, key, owner, expires, doc) "
                      "VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::text) "
                      "ON CONFLICT (kind, key) DO UPDATE SET owner = excluded.owner, "
                      "expires = excluded.expires, doc = excluded.doc "
                      "WHERE auth_object.expires <> 0 AND auth_object.expires <= $6::bigint",
    [PS_OBJ_REPLACE] = "INSERT INTO auth_object(kind, key, owner, expires, doc) "
                       "VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::text) "
                       "ON CONFLICT (kind, key) DO UPDATE SET owner = excluded.owner, "
                       "expires = excluded.expires, doc = excluded.doc",
    [PS_OBJ_DEL] = "DELETE FROM auth_object WHERE kind = $1::text AND key = $2::text",
    [PS_OBJ_LIST] = "SELECT key, owner, expires, doc FROM auth_object WHERE kind = $1::text AND "
                    "(expires = 0 OR expires > $2::bigint) ORDER BY key",
    [PS_OBJ_LIST_OWNER] = "SELECT key, owner, expires, doc FROM auth_object WHERE kind = $1::text "
                          "AND owner = $3::text AND (expires = 0 OR expires > $2::bigint) "
                          "ORDER BY key",
    [PS_OBJ_PURGE] = "DELETE FROM auth_object WHERE expires <> 0 AND expires <= $1::bigint",
    [PS_AJ_GET] = "SELECT generation, applied FROM audit_journal WHERE id = 1",
    [PS_AJ_SET] = "UPDATE audit_journal SET generation = $1::bigint, applied = $2::bigint "
                  "WHERE id = 1",
};

/* Call cb for each row: type, id, version, last_updated, deleted, method, content. */
static ehr_status each_row(PGresult *r, ehr_store_row_cb cb, void *ctx)
{
    ehr_status res = EHR_OK;
    for (int i = 0; !res && i < PQntuples(r); i++) {
        ehr_store_rec rec = {
            .type = PQgetvalue(r, i, 0),
            .id = PQgetvalue(r, i, 1),
            .version = pg_get_i64(r, i, 2),
            .last_updated = pg_get_i64(r, i, 3),
            .deleted = PQgetvalue(r, i, 4)[0] == 't',
            .method = PQgetvalue(r, i, 5),
            .content = PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6),
            .content_len = (size_t)PQgetlength(r, i, 6),
        };
        res = cb(ctx, &rec);
    }
    return res;
}

/*
 * The access limits of a query (store.h, ehr_store_access) over column
 * type_col and, for the compartment, the current key or the version rid.
 */
void ehr_pg__access_sql(struct pg_q *q, ehr_buf *w, const ehr_store_access *a, const char *type_col,
                        bool versions, const char *id_col)
{
    if (!a)
        return;
    if (a->n_groups == 0) {
        ehr_buf_puts(w, " AND false");
        return;
    }
    ehr_buf_puts(w, " AND (");
    for (size_t i = 0; i < a->n_groups; i++) {
        const struct ehr_store_access_group *g = &a->groups[i];
        ehr_buf_puts(w, i ? " OR (true" : "(true");
        if (g->n_types)
            ehr_buf_printf(w, " AND %s = ANY ($%d::text[])", type_col,
                           pgq_array(q, g->types, g->n_types));
        if (g->limited)
            ehr_buf_printf(w,
                           versions ? " AND %s IN (SELECT rid FROM version_compartment WHERE "
                                      "patient = ANY ($%d::text[]))"
                                    : " AND %s IN (SELECT key FROM compartment WHERE "
                                      "patient = ANY ($%d::text[]))",
                           id_col, pgq_array(q, g->patients, g->n_patients));
        ehr_buf_putc(w, ')');
    }
    ehr_buf_putc(w, ')');
}

/* Run a count(*) query into *total. */
static ehr_status count_rows(struct pg_conn *c, struct pg_q *q, size_t *total, ehr_err *err)
{
    ehr_status st;
    PGresult *r = pg_dynamic(c, q, true, &st, err, "counting rows");
    if (!r)
        return st;
    *total = (size_t)pg_get_i64(r, 0, 0);
    PQclear(r);
    return EHR_OK;
}

/* Run q and call cb per row. */
static ehr_status rows(struct pg_conn *c, struct pg_q *q, ehr_store_row_cb cb, void *ctx,
                       ehr_err *err)
{
    ehr_status st;
    PGresult *r = pg_dynamic(c, q, true, &st, err, "reading rows");
    if (!r)
        return st;
    st = each_row(r, cb, ctx);
    PQclear(r);
    return st;
}

ehr_status ehr_pg__history(ehr_store_conn *base, const ehr_store_history_q *hq, ehr_store_row_cb cb,
                           void *ctx, size_t *total, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    struct pg_q q;
    pgq_init(&q);
    ehr_buf w = EHR_BUF_INIT;
    ehr_buf_puts(&w, " WHERE true");
    if (hq->type)
        ehr_buf_printf(&w, " AND type = $%d::text", pgq_text(&q, hq->type));
    if (hq->id)
        ehr_buf_printf(&w, " AND id = $%d::text", pgq_text(&q, hq->id));
    if (hq->since)
        ehr_buf_printf(&w, " AND last_updated >= $%d::bigint", pgq_int(&q, hq->since));
    if (hq->at_or_before)
        ehr_buf_printf(&w, " AND last_updated <= $%d::bigint", pgq_int(&q, hq->at_or_before));
    ehr_pg__access_sql(&q, &w, hq->access, "type", true, "rid");
    ehr_status res = w.data ? EHR_OK : ehr_err_set(err, EHR_ENOMEM, "out of memory");
    if (!res && total) {
        ehr_buf_printf(&q.sql, "SELECT count(*) FROM resource%s", w.data);
        res = count_rows(c, &q, total, err);
    }
    if (!res && hq->count > 0 && cb) {
        ehr_buf_reset(&q.sql);
        ehr_buf_printf(&q.sql,
                       "SELECT type, id, version, last_updated, deleted, method, content "
                       "FROM resource%s ORDER BY rid DESC LIMIT %zu OFFSET %zu",
                       w.data, hq->count, hq->offset);
        res = rows(c, &q, cb, ctx, err);
    }
    ehr_buf_free(&w);
    pgq_free(&q);
    return res;
}

ehr_status ehr_pg__compartment_of(ehr_store_conn *base, const char *type, const char *id,
                                  int64_t version, ehr_store_patient_cb cb, void *ctx, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    char vb[24];
    const char *v[] = {type, id, pg_i64(vb, version)};
    ehr_status st;
    PGresult *r = pg_prepared(c, version ? PS_COMP_VERSION : PS_COMP_CURRENT, version ? 3 : 2, v,
                              NULL, NULL, true, &st, err, "reading a compartment");
    if (!r)
        return st;
    int n = PQntuples(r);
    for (int i = 0; !st && i < n; i++)
        st = cb(ctx, PQgetvalue(r, i, 0));
    PQclear(r);
    if (st || n)
        return st;
    /* no patient: tell "in no compartment" from "no such version" */
    if (!(r = pg_prepared(c, PS_VERSION_EXISTS, 3, v, NULL, NULL, true, &st, err,
                          "reading a resource")))
        return st;
    n = PQntuples(r);
    PQclear(r);
    return n ? EHR_OK : ehr_err_set(err, EHR_ENOTFOUND, "%s/%s is not known", type, id);
}

ehr_status ehr_pg__audit_list(ehr_store_conn *base, const ehr_store_audit_q *aq,
                              ehr_store_audit_cb cb, void *ctx, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    /* in pages by seq (keyset), so that a long log does not sit in memory */
    int64_t from = aq->from_seq, below = 0; /* newest first: seq < below */
    size_t left = aq->limit;
    ehr_status res = EHR_OK;
    for (bool more = true; more && !res;) {
        size_t page = 2000;
        if (aq->limit && left < page)
            page = left;
        struct pg_q q;
        pgq_init(&q);
        ehr_buf_printf(&q.sql,
                       "SELECT seq, time, hash, event FROM audit WHERE seq >= $%d::bigint AND "
                       "time >= $%d::bigint",
                       pgq_int(&q, from), pgq_int(&q, aq->since));
        if (aq->until)
            ehr_buf_printf(&q.sql, " AND time <= $%d::bigint", pgq_int(&q, aq->until));
        if (aq->text)
            ehr_buf_printf(&q.sql, " AND strpos(event, $%d::text) > 0", pgq_text(&q, aq->text));
        if (below)
            ehr_buf_printf(&q.sql, " AND seq < $%d::bigint", pgq_int(&q, below));
        ehr_buf_printf(&q.sql, " ORDER BY seq %s LIMIT %zu", aq->newest_first ? "DESC" : "ASC",
                       page);
        PGresult *r = pg_dynamic(c, &q, true, &res, err, "reading the audit log");
        pgq_free(&q);
        if (!r)
            break;
        int n = PQntuples(r);
        more = (size_t)n == page;
        for (int i = 0; !res && i < n; i++) {
            int64_t seq = pg_get_i64(r, i, 0);
            res = cb(ctx, seq, pg_get_i64(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                     (size_t)PQgetlength(r, i, 3));
            if (aq->newest_first)
                below = seq;
            else
                from = seq + 1;
        }
        PQclear(r);
        if (aq->limit) {
            left -= (size_t)n;
            if (!left)
                more = false;
        }
    }
    return res;
}

ehr_status ehr_pg__obj_get(ehr_store_conn *base, const char *kind, const char *key, ehr_buf *doc,
                           ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    char nb[24];
    const char *v[] = {kind, key, pg_i64(nb, ehr_time_now_us())};
    ehr_status st;
    PGresult *r = pg_prepared(c, PS_OBJ_GET, 3, v, NULL, NULL, true, &st, err, "reading auth data");
    if (!r)
        return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return EHR_ENOTFOUND;
    }
    ehr_buf_reset(doc);
    if (ehr_buf_append(doc, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0)))
        st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
    PQclear(r);
    return st;
}

ehr_status ehr_pg__obj_put(ehr_store_conn *base, const ehr_store_obj *obj, bool create_only,
                           ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    char eb[24], nb[24];
    const char *v[] = {obj->kind,  obj->key,
                       obj->owner, pg_i64(eb, obj->expires),
                       obj->doc,   pg_i64(nb, ehr_time_now_us())};
    int lens[] = {0, 0, 0, 0, (int)obj->doc_len, 0};
    int fmts[] = {0, 0, 0, 0, 1, 0};
    ehr_status st;
    PGresult *r = pg_prepared(c, create_only ? PS_OBJ_INSERT : PS_OBJ_REPLACE, create_only ? 6 : 5,
                              v, lens, fmts, false, &st, err, "writing auth data");
    if (!r)
        return st;
    /* create_only: an existing, unexpired row makes the upsert change nothing */
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (create_only && !changed)
        return ehr_err_set(err, EHR_EEXISTS, "already exists");
    return EHR_OK;
}

ehr_status ehr_pg__obj_del(ehr_store_conn *base, const char *kind, const char *key, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    const char *v[] = {kind, key};
    ehr_status st;
    PGresult *r =
        pg_prepared(c, PS_OBJ_DEL, 2, v, NULL, NULL, false, &st, err, "deleting auth data");
    PQclear(r);
    return st;
}

ehr_status ehr_pg__obj_list(ehr_store_conn *base, const char *kind, const char *owner,
                            ehr_store_obj_cb cb, void *ctx, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    char nb[24];
    const char *v[] = {kind, pg_i64(nb, ehr_time_now_us()), owner};
    ehr_status st;
    PGresult *r = pg_prepared(c, owner ? PS_OBJ_LIST_OWNER : PS_OBJ_LIST, owner ? 3 : 2, v, NULL,
                              NULL, true, &st, err, "listing auth data");
    if (!r)
        return st;
    for (int i = 0; !st && i < PQntuples(r); i++) {
        ehr_store_obj o = {
            .kind = kind,
            .key = PQgetvalue(r, i, 0),
            .owner = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1),
            .expires = pg_get_i64(r, i, 2),
            .doc = PQgetvalue(r, i, 3),
            .doc_len = (size_t)PQgetlength(r, i, 3),
        };
        st = cb(ctx, &o);
    }
    PQclear(r);
    return st;
}

ehr_status ehr_pg__obj_purge(ehr_store_conn *base, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    char nb[24];
    const char *v[] = {pg_i64(nb, ehr_time_now_us())};
    ehr_status st;
    PGresult *r =
        pg_prepared(c, PS_OBJ_PURGE, 1, v, NULL, NULL, false, &st, err, "purging auth data");
    PQclear(r);
    return st;
}

/* Current resources in key order, in pages by key: memory stays flat, and
   cb may use the connection (each page is read before it is handed out). */
ehr_status ehr_pg__scan(ehr_store_conn *base, const ehr_store_scan_q *sq, ehr_store_row_cb cb,
                        void *ctx, int64_t *last_key, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    int64_t after = sq->after_key;
    size_t left = sq->limit;
    ehr_status res = EHR_OK;
    for (bool more = true; more && !res;) {
        size_t page = 500;
        if (sq->limit && left < page)
            page = left;
        struct pg_q q;
        pgq_init(&q);
        ehr_buf *b = &q.sql;
        ehr_buf_printf(b,
                       "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.method, "
                       "r.content, c.key FROM current c JOIN resource r ON r.rid = c.rid "
                       "WHERE NOT c.deleted AND c.key > $%d::bigint",
                       pgq_int(&q, after));
        if (sq->n_types)
            ehr_buf_printf(b, " AND c.type = ANY ($%d::text[])",
                           pgq_array(&q, sq->types, sq->n_types));
        if (sq->since)
            ehr_buf_printf(b, " AND c.last_updated >= $%d::bigint", pgq_int(&q, sq->since));
        if (sq->in_compartments && sq->n_patients)
            ehr_buf_printf(b,
                           " AND c.key IN (SELECT key FROM compartment WHERE patient = "
                           "ANY ($%d::text[]))",
                           pgq_array(&q, sq->patients, sq->n_patients));
        else if (sq->in_compartments)
            ehr_buf_puts(b, " AND c.key IN (SELECT key FROM compartment)");
        ehr_pg__access_sql(&q, b, sq->access, "c.type", false, "c.key");
        ehr_buf_printf(b, " ORDER BY c.key LIMIT %zu", page);
        PGresult *r = pg_dynamic(c, &q, true, &res, err, "scanning resources");
        pgq_free(&q);
        if (!r)
            break;
        int n = PQntuples(r);
        more = (size_t)n == page;
        for (int i = 0; !res && i < n; i++) {
            ehr_store_rec rec = {
                .type = PQgetvalue(r, i, 0),
                .id = PQgetvalue(r, i, 1),
                .version = pg_get_i64(r, i, 2),
                .last_updated = pg_get_i64(r, i, 3),
                .deleted = false,
                .method = PQgetvalue(r, i, 5),
                .content = PQgetvalue(r, i, 6),
                .content_len = (size_t)PQgetlength(r, i, 6),
            };
            after = pg_get_i64(r, i, 7);
            if (last_key)
                *last_key = after;
            res = cb(ctx, &rec);
        }
        PQclear(r);
        if (sq->limit) {
            left -= (size_t)n;
            more = more && left > 0;
        }
    }
    return res;
}

ehr_status ehr_pg__audit_applied_get(ehr_store_conn *base, int64_t *generation, int64_t *offset,
                                     ehr_err *err)
{
    ehr_status st;
    *generation = *offset = 0;
    PGresult *r = pg_prepared((struct pg_conn *)base, PS_AJ_GET, 0, NULL, NULL, NULL, true, &st,
                              err, "reading the audit journal mark");
    if (!r)
        return st;
    if (PQntuples(r) == 1) {
        *generation = pg_get_i64(r, 0, 0);
        *offset = pg_get_i64(r, 0, 1);
    }
    PQclear(r);
    return EHR_OK;
}

ehr_status ehr_pg__audit_applied_set(ehr_store_conn *base, int64_t generation, int64_t offset,
                                     ehr_err *err)
{
    char gb[24], ob[24];
    const char *v[] = {pg_i64(gb, generation), pg_i64(ob, offset)};
    ehr_status st;
    PGresult *r = pg_prepared((struct pg_conn *)base, PS_AJ_SET, 2, v, NULL, NULL, false, &st, err,
                              "setting the audit journal mark");
    PQclear(r);
    return st;
}
