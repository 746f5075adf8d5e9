/*
 * engine.c - inbound HL7 v2: store raw, map, apply through the
 * repository, record the outcome, acknowledge (engine.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "fhir/validate.h"
#include "hl7v2/hl7v2_int.h"

struct ehr_hl7_engine {
    ehr_repo *repo;
    ehr_hl7_config cfg;
};

ehr_status ehr_hl7_engine_new(ehr_repo *repo, const ehr_hl7_config *cfg, ehr_hl7_engine **out,
                              ehr_err *err)
{
    ehr_hl7_engine *e = calloc(1, sizeof *e);
    if (!e)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    e->repo = repo;
    if (cfg)
        e->cfg = *cfg;
    if (!e->cfg.app)
        e->cfg.app = "EHR";
    if (!e->cfg.facility)
        e->cfg.facility = "EHR";
    if (!e->cfg.limits.max_message)
        ehr_hl7_limits_default(&e->cfg.limits);
    *out = e;
    return EHR_OK;
}

void ehr_hl7_engine_free(ehr_hl7_engine **e)
{
    if (e && *e) {
        free(*e);
        *e = NULL;
    }
}

void ehr_hl7_reply_free(ehr_hl7_reply *r)
{
    ehr_buf_free(&r->accept);
    ehr_buf_free(&r->app);
}

/* -- applying a mapped Bundle -- */

struct count_ctx {
    size_t n;
    char id[72];
};

static ehr_status count_cb(void *p, const ehr_store_rec *rec)
{
    struct count_ctx *c = p;
    if (c->n++ == 0)
        snprintf(c->id, sizeof c->id, "%s", rec->id);
    return EHR_OK;
}

/* How many resources of type match query (the caller's view); id: the first. */
static ehr_status count_matches(ehr_repo *repo, const ehr_repo_ctx *ctx, const char *type,
                                const char *query, size_t *n, char id[72], ehr_err *err)
{
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return EHR_ENOMEM;
    struct ehr_search_param *ps;
    size_t np;
    ehr_search s;
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_status st = ehr_search_split_query(query, a, &ps, &np);
    if (!st)
        st = ehr_search_parse(type, ps, np, true, a, &s, &issues);
    struct count_ctx c = {0};
    if (!st) {
        s.q.count = 2;
        st = ehr_repo_search(repo, ctx, &s, count_cb, &c, NULL, err);
        ehr_search_done(&s);
    }
    ehr_fhir_issues_free(&issues);
    ehr_arena_free(&a);
    *n = c.n;
    if (id)
        snprintf(id, 72, "%s", c.id);
    return st;
}

/* ERR location of entry i: the segment it came from, when the map said. */
static void entry_where(const json_t *entries, long i, ehr_hl7_error *e)
{
    json_t *w = json_object_get(json_array_get(entries, (size_t)i), "_where");
    if (!w)
        return;
    snprintf(e->seg, sizeof e->seg, "%s",
             ehr_json_get_string(w, "seg") ? ehr_json_get_string(w, "seg") : "");
    e->seg_seq = (int)json_integer_value(json_object_get(w, "seq"));
    e->field = (int)json_integer_value(json_object_get(w, "field"));
}

/*
 * Steps before the transaction: the unknown-patient check of the "reject"
 * policy, and the prior record of a merge (read, changed, and written back
 * as an update conditional on the version read).
 */
static ehr_status prepare(ehr_repo *repo, const ehr_repo_ctx *ctx, json_t *entries,
                          ehr_hl7_error *e)
{
    size_t i;
    json_t *en;
    json_array_foreach(entries, i, en)
    {
        json_t *res = json_object_get(en, "resource");
        json_t *req = json_object_get(en, "request");
        const char *type = ehr_json_get_string(res, "resourceType");
        json_t *merge = json_object_get(en, "_merge");
        ehr_err err = {{0}};
        size_t n = 0;
        char id[72];
        if (json_is_true(json_object_get(en, "_mustExist"))) {
            ehr_status st = count_matches(repo, ctx, type, ehr_json_get_string(req, "ifNoneExist"),
                                          &n, NULL, &err);
            if (st)
                return ehr_hl7_fail(e, st, 207, "", 0, 0, "looking up the %s failed: %s", type,
                                    err.msg);
            if (n == 0)
                return ehr_hl7_fail(e, EHR_ENOTFOUND, 204, "PID", 0, 3,
                                    "no patient on file has the identifier in PID-3 (this "
                                    "server is set to reject unknown patients)");
        }
        if (!merge)
            continue;
        const char *url = ehr_json_get_string(req, "url");
        const char *q = url ? strchr(url, '?') : NULL;
        char ptype[64];
        snprintf(ptype, sizeof ptype, "%.*s", q ? (int)(q - url) : 0, url ? url : "");
        ehr_status st = q ? count_matches(repo, ctx, ptype, q + 1, &n, id, &err) : EHR_EINVAL;
        if (st)
            return ehr_hl7_fail(e, st, 207, "", 0, 0, "looking up the %s failed: %s", ptype,
                                err.msg);
        if (n != 1) {
            ehr_hl7_fail(e, n ? EHR_EMULTIPLE : EHR_ENOTFOUND, n ? 205 : 204, "", 0, 0,
                         n ? "more than one %s has the identifier of the record merged away"
                           : "no %s on file has the identifier of the record merged away",
                         ptype);
            entry_where(entries, (long)i, e);
            return n ? EHR_EMULTIPLE : EHR_ENOTFOUND;
        }
        ehr_repo_out ro = {0};
        st = ehr_repo_read(repo, ctx, ptype, id, 0, &ro, &err);
        json_t *cur = st ? NULL : ehr_json_parse(ro.body.data, ro.body.len, &err);
        if (!cur) {
            ehr_repo_out_free(&ro);
            return ehr_hl7_fail(e, st ? st : EHR_EINTERNAL, 207, "", 0, 0,
                                "reading the %s failed: %s", ptype, err.msg);
        }
        const char *k;
        json_t *v;
        json_object_foreach(merge, k, v) json_object_set(cur, k, v);
        char u[200], etag[40];
        snprintf(u, sizeof u, "%s/%s", ptype, id);
        snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)ro.version);
        ehr_repo_out_free(&ro);
        json_object_set_new(en, "resource", cur);
        json_object_set_new(
            en, "request",
            json_pack("{s:s, s:s, s:s}", "method", "PUT", "url", u, "ifMatch", etag));
        json_object_del(en, "_merge");
    }
    return EHR_OK;
}

/* The Bundle as the repository takes it: the map's private keys removed. */
static json_t *clean_copy(const json_t *bundle)
{
    json_t *b = json_deep_copy(bundle);
    size_t i;
    json_t *en;
    json_array_foreach(json_object_get(b, "entry"), i, en)
    {
        json_object_del(en, "_mustExist");
        json_object_del(en, "_where");
    }
    return b;
}

/* Index n of "Bundle.entry[n]..." in an issue location, or -1. */
static long entry_index(const char *expr)
{
    const char *p = expr ? strstr(expr, "entry[") : NULL;
    return p ? strtol(p + 6, NULL, 10) : -1;
}

/*
 * Apply the message's Bundle as one FHIR transaction through the
 * repository: every write of the message or none (FHIR R4 3.1.0.11).
 */
ehr_status hl7_apply(ehr_repo *repo, const ehr_repo_ctx *ctx, json_t *bundle, ehr_hl7_error *e,
                     json_t **summary)
{
    json_t *entries = json_object_get(bundle, "entry");
    ehr_status st = prepare(repo, ctx, entries, e);
    if (st)
        return st;
    json_t *tx = clean_copy(bundle);
    ehr_repo_tx_opts opts = {.skip_unchanged = true};
    json_t *resp = NULL;
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    ehr_err err = {{0}};
    st = ehr_repo_transaction(repo, ctx, tx, &opts, &resp, &issues, &err);
    json_decref(tx);
    if (st) {
        const struct ehr_fhir_issue *is = NULL;
        for (size_t i = 0; i < issues.n && !is; i++)
            if (issues.items[i].severity <= EHR_SEV_ERROR)
                is = &issues.items[i];
        long idx = entry_index(is ? is->expression : NULL);
        const char *type = ehr_json_get_string(
            json_object_get(json_array_get(entries, idx >= 0 ? (size_t)idx : 0), "resource"),
            "resourceType");
        ehr_hl7_fail(e, st,
                     st == EHR_EMULTIPLE    ? 205
                     : st == EHR_EFORBIDDEN ? 207
                                            : 207,
                     "", 0, 0, "the %s made from the message was refused: %s%s%s",
                     type && idx >= 0 ? type : "transaction",
                     is && is->expression ? is->expression : "", is && is->expression ? ": " : "",
                     is ? is->message : err.msg);
        if (idx >= 0)
            entry_where(entries, idx, e);
        ehr_fhir_issues_free(&issues);
        json_decref(resp);
        return st;
    }
    ehr_fhir_issues_free(&issues);
    json_t *out = json_array();
    size_t i;
    json_t *en;
    json_array_foreach(json_object_get(resp, "entry"), i, en)
    {
        json_t *r = json_object_get(en, "response");
        json_array_append_new(out, json_pack("{s:s?, s:s?}", "resource",
                                             ehr_json_get_string(r, "location"), "status",
                                             ehr_json_get_string(r, "status")));
    }
    json_decref(resp);
    if (summary)
        *summary = out;
    else
        json_decref(out);
    return EHR_OK;
}

/* -- the inbound path -- */

static void peer_of(const ehr_hl7_msg *m, char *out, size_t cap)
{
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    snprintf(out, cap, "%s^%s", h.sending_app, h.sending_facility);
}

static void ack_id(char out[21])
{
    char id[EHR_ID_LEN];
    ehr_id_new(id);
    memcpy(out, id, 20);
    out[20] = '\0';
}

static ehr_status conn(ehr_hl7_engine *e, ehr_store_conn **c, ehr_err *err)
{
    ehr_status st = ehr_repo_conn(e->repo, c, err);
    /* a backend without the HL7 message ops cannot keep messages */
    if (!st && !(*c)->store->ops->hl7_put)
        st = ehr_err_set(err, EHR_EUNSUPPORTED, "the %s store does not keep HL7 v2 messages yet",
                         (*c)->store->ops->name);
    return st;
}

/* Make the ACKs for an outcome. accept_code: CA/CE/CR for enhanced mode. */
static void build_acks(ehr_hl7_engine *e, const ehr_hl7_msg *m, ehr_hl7_ack_code app_code,
                       ehr_hl7_ack_code accept_code, const ehr_hl7_error *err, ehr_hl7_reply *out)
{
    char id[21];
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    bool ok = app_code == EHR_HL7_AA;
    out->code = app_code;
    if (!ok && err)
        out->error = *err;
    if (m && ehr_hl7_enhanced(m)) {
        if (ehr_hl7_ack_wanted(h.accept_ack, accept_code == EHR_HL7_CA)) {
            ack_id(id);
            ehr_hl7_ack(m, accept_code, accept_code == EHR_HL7_CA ? NULL : err, e->cfg.app,
                        e->cfg.facility, id, &out->accept);
        }
        /* a message refused at the accept step gets no application ACK */
        if (accept_code == EHR_HL7_CA && ehr_hl7_ack_wanted(h.app_ack, ok)) {
            ack_id(id);
            ehr_hl7_ack(m, app_code, ok ? NULL : err, e->cfg.app, e->cfg.facility, id, &out->app);
        }
        return;
    }
    ack_id(id);
    ehr_hl7_ack(m, app_code, ok ? NULL : err, e->cfg.app, e->cfg.facility, id, &out->app);
}

/* Store a message that is refused before processing (no duplicate check). */
static void store_rejected(ehr_hl7_engine *e, const ehr_hl7_msg *m, const char *data, size_t len,
                           const ehr_hl7_error *he, ehr_hl7_reply *out)
{
    ehr_store_conn *c;
    ehr_err err = {{0}};
    char peer[200] = "", type[64] = "";
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    if (m) {
        peer_of(m, peer, sizeof peer);
        snprintf(type, sizeof type, "%s^%s", h.type, h.event);
    }
    int64_t now = ehr_time_now_us();
    ehr_store_hl7 rec = {.direction = "in",
                         .peer = peer,
                         .control_id = h.control_id,
                         .type = type,
                         .status = "rejected",
                         .ack_code = "AR",
                         .outcome = he->text,
                         .received = now,
                         .processed = now,
                         .raw = data,
                         .raw_len = len,
                         .ack = out->app.data,
                         .ack_len = out->app.len};
    if (!conn(e, &c, &err) && !EHR_STORE_CALL(c, hl7_put, &rec, &out->id, &err))
        out->stored = true;
    else
        ehr_log(EHR_LOG_ERROR, "hl7v2: storing a rejected message failed: %s", err.msg);
}

/* Map and apply stored message id; record the outcome; fill out. */
static ehr_status process(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, const ehr_hl7_msg *m,
                          int64_t id, ehr_hl7_reply *out)
{
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    char peer[200];
    peer_of(m, peer, sizeof peer);
    struct hl7_map_in in = {.m = m,
                            .peer = peer,
                            .control_id = h.control_id,
                            .reject_unknown_patient = e->cfg.reject_unknown_patient};
    ehr_hl7_error he = {0};
    json_t *bundle = NULL, *summary = NULL;
    ehr_status st = hl7_map(&in, &bundle, &he);
    if (!st)
        st = hl7_apply(e->repo, ctx, bundle, &he, &summary);
    json_decref(bundle);
    ehr_hl7_ack_code code = st ? EHR_HL7_AE : EHR_HL7_AA;
    build_acks(e, m, code, EHR_HL7_CA, &he, out);
    char *outcome = NULL;
    if (st) {
        outcome = strdup(he.text);
    } else {
        json_t *o = json_pack("{s:O}", "written", summary);
        outcome = ehr_json_dumps(o, EHR_JSON_COMPACT);
        json_decref(o);
    }
    json_decref(summary);
    ehr_store_conn *c;
    ehr_err err = {{0}};
    ehr_store_hl7 rec = {.id = id,
                         .status = st ? "error" : "applied",
                         .ack_code = ehr_hl7_ack_code_str(code),
                         .outcome = outcome,
                         .processed = ehr_time_now_us(),
                         .ack = out->app.data,
                         .ack_len = out->app.len};
    ehr_status ust = conn(e, &c, &err);
    if (!ust)
        ust = EHR_STORE_CALL(c, hl7_update, &rec, &err);
    if (ust)
        ehr_log(EHR_LOG_ERROR, "hl7v2: recording the outcome of message %lld failed: %s",
                (long long)id, err.msg);
    ehr_log(EHR_LOG_INFO, "hl7v2: message %lld %s^%s: %s", (long long)id, h.type, h.event,
            st ? "error" : "applied");
    free(outcome);
    return EHR_OK;
}

struct found {
    int64_t id;
    char status[16];
    ehr_buf ack;
};

static ehr_status found_cb(void *p, const ehr_store_hl7 *m)
{
    struct found *f = p;
    f->id = m->id;
    snprintf(f->status, sizeof f->status, "%s", m->status);
    if (m->ack)
        return ehr_buf_append(&f->ack, m->ack, m->ack_len);
    return EHR_OK;
}

static ehr_status check_header(const ehr_hl7_msg *m, ehr_hl7_error *he)
{
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    if (!*h.type)
        return ehr_hl7_fail(he, EHR_EINVAL, 101, "MSH", 1, 9, "MSH-9 (message type) is required");
    if (!*h.control_id)
        return ehr_hl7_fail(he, EHR_EINVAL, 101, "MSH", 1, 10,
                            "MSH-10 (message control id) is required");
    if (strncmp(h.version, "2.", 2))
        return ehr_hl7_fail(he, EHR_EUNSUPPORTED, 203, "MSH", 1, 12,
                            "MSH-12: version '%s' is not supported (2.x only)", h.version);
    if (*h.processing && strcmp(h.processing, "P") && strcmp(h.processing, "T") &&
        strcmp(h.processing, "D"))
        return ehr_hl7_fail(he, EHR_EUNSUPPORTED, 202, "MSH", 1, 11,
                            "MSH-11: processing id '%s' is not P, T or D", h.processing);
    if (!hl7_map_supported(h.type, h.event)) {
        bool type_known = hl7_map_supported(h.type, NULL);
        return ehr_hl7_fail(he, EHR_EUNSUPPORTED, type_known ? 201 : 200, "MSH", 1, 9,
                            "MSH-9: %s^%s is not a message this server accepts", h.type, h.event);
    }
    return EHR_OK;
}

ehr_status ehr_hl7_receive(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, const char *data, size_t len,
                           ehr_hl7_reply *out)
{
    memset(out, 0, sizeof *out);
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return EHR_ENOMEM;
    ehr_hl7_msg *m = NULL;
    ehr_hl7_error he = {0};
    ehr_status st = ehr_hl7_parse(data, len, &e->cfg.limits, a, &m, &he);
    if (!st)
        st = check_header(m, &he);
    if (st) {
        /* refused: AR (enhanced: CR), stored for the record */
        build_acks(e, m, EHR_HL7_AR, EHR_HL7_CR, &he, out);
        if (m && ehr_hl7_enhanced(m) && !out->app.len && out->accept.len) {
            /* the stored ACK is what was sent */
            ehr_buf tmp = out->app;
            out->app = out->accept;
            store_rejected(e, m, data, len, &he, out);
            out->accept = out->app;
            out->app = tmp;
        } else {
            store_rejected(e, m, data, len, &he, out);
        }
        ehr_arena_free(&a);
        return EHR_OK;
    }
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    char peer[200], type[64];
    peer_of(m, peer, sizeof peer);
    snprintf(type, sizeof type, "%s^%s", h.type, h.event);
    ehr_store_conn *c;
    ehr_err err = {{0}};
    ehr_store_hl7 rec = {.direction = "in",
                         .peer = peer,
                         .control_id = h.control_id,
                         .type = type,
                         .status = "received",
                         .received = ehr_time_now_us(),
                         .raw = data,
                         .raw_len = len};
    st = conn(e, &c, &err);
    if (!st)
        st = EHR_STORE_CALL(c, hl7_put, &rec, &out->id, &err);
    if (st == EHR_EEXISTS) {
        /* HL7 v2.5.1 2.9.2: a repeated control id is answered, not re-applied */
        struct found f = {.ack = EHR_BUF_INIT};
        ehr_store_hl7_q q = {.id = out->id, .with_raw = true};
        st = EHR_STORE_CALL(c, hl7_list, &q, found_cb, &f, &err);
        out->duplicate = true;
        out->stored = true;
        if (!st && !strcmp(f.status, "received")) {
            /* stored before a crash and never finished: finish it now */
            ehr_buf_free(&f.ack);
            st = process(e, ctx, m, out->id, out);
            out->duplicate = false;
        } else if (!st) {
            if (f.ack.len && !ehr_hl7_enhanced(m)) {
                out->app = f.ack;
                ehr_hl7_msg *am = NULL;
                ehr_arena *aa = ehr_arena_new();
                if (aa && !ehr_hl7_parse(f.ack.data, f.ack.len, NULL, aa, &am, NULL)) {
                    const char *code = ehr_hl7_val(ehr_hl7_seg_find(am, "MSA", 1), 1, 1);
                    out->code = !strcmp(code, "AA")   ? EHR_HL7_AA
                                : !strcmp(code, "AE") ? EHR_HL7_AE
                                                      : EHR_HL7_AR;
                }
                ehr_arena_free(&aa);
            } else {
                ehr_buf_free(&f.ack);
                bool applied = !strcmp(f.status, "applied");
                ehr_hl7_error de;
                ehr_hl7_fail(&de, EHR_EINVAL, 207, "", 0, 0, "%s",
                             "this message was received before and was not applied");
                build_acks(e, m, applied ? EHR_HL7_AA : EHR_HL7_AE, EHR_HL7_CA, &de, out);
            }
        }
        ehr_arena_free(&a);
        return st;
    }
    if (st) {
        /* not stored: never acknowledge positively */
        ehr_log(EHR_LOG_ERROR, "hl7v2: storing a message failed: %s", err.msg);
        ehr_hl7_fail(&he, st, 207, "", 0, 0, "the message could not be stored; send it again");
        build_acks(e, m, EHR_HL7_AE, EHR_HL7_CE, &he, out);
        ehr_arena_free(&a);
        return st;
    }
    out->stored = true;
    st = process(e, ctx, m, out->id, out);
    ehr_arena_free(&a);
    return st;
}

ehr_status ehr_hl7_to_fhir(const char *data, size_t len, const ehr_hl7_config *cfg, json_t **bundle,
                           ehr_hl7_error *e)
{
    *bundle = NULL;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return EHR_ENOMEM;
    ehr_hl7_msg *m = NULL;
    ehr_status st =
        ehr_hl7_parse(data, len, cfg && cfg->limits.max_message ? &cfg->limits : NULL, a, &m, e);
    if (!st)
        st = check_header(m, e);
    if (!st) {
        ehr_hl7_header h;
        ehr_hl7_header_get(m, &h);
        char peer[200];
        peer_of(m, peer, sizeof peer);
        struct hl7_map_in in = {.m = m,
                                .peer = peer,
                                .control_id = h.control_id,
                                .reject_unknown_patient = cfg && cfg->reject_unknown_patient};
        st = hl7_map(&in, bundle, e);
    }
    ehr_arena_free(&a);
    return st;
}

ehr_status ehr_hl7_rsp_to_fhir(const char *data, size_t len, json_t **bundle, ehr_hl7_error *e)
{
    *bundle = NULL;
    ehr_arena *a = ehr_arena_new();
    if (!a)
        return EHR_ENOMEM;
    ehr_hl7_msg *m = NULL;
    ehr_status st = ehr_hl7_parse(data, len, NULL, a, &m, e);
    ehr_hl7_header h;
    if (!st) {
        ehr_hl7_header_get(m, &h);
        if (strcmp(h.type, "RSP"))
            st = ehr_hl7_fail(e, EHR_EINVAL, 200, "MSH", 1, 9,
                              "the registry answered %s^%s, not RSP^K11", h.type, h.event);
    }
    const ehr_hl7_seg *msa = st ? NULL : ehr_hl7_seg_find(m, "MSA", 1);
    const ehr_hl7_seg *qak = st ? NULL : ehr_hl7_seg_find(m, "QAK", 1);
    const char *code = ehr_hl7_val(msa, 1, 1), *qs = ehr_hl7_val(qak, 2, 1);
    if (!st && (!strcmp(code, "AE") || !strcmp(code, "AR") ||
                (*qs && strcmp(qs, "OK") && strcmp(qs, "NF")))) {
        const ehr_hl7_seg *err = ehr_hl7_seg_find(m, "ERR", 1);
        const char *why = *ehr_hl7_val(err, 8, 1) ? ehr_hl7_val(err, 8, 1) : ehr_hl7_val(msa, 3, 1);
        st = ehr_hl7_fail(e, EHR_EUNPROCESSABLE, 207, "QAK", 0, 2,
                          "the registry refused the query (MSA %s, QAK %s)%s%s", code,
                          *qs ? qs : "-", *why ? ": " : "", why);
    }
    json_t *coll = NULL;
    if (!st) {
        coll =
            json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle", "type", "collection", "entry");
        if (strcmp(qs, "NF") && ehr_hl7_seg_find(m, "RXA", 1)) {
            char peer[200];
            peer_of(m, peer, sizeof peer);
            struct hl7_map_in in = {.m = m, .peer = peer, .control_id = h.control_id};
            json_t *tx = NULL;
            st = hl7_map(&in, &tx, e);
            size_t i;
            json_t *en;
            json_array_foreach(json_object_get(tx, "entry"), i, en) json_array_append_new(
                json_object_get(coll, "entry"),
                json_pack("{s:O, s:O}", "fullUrl", json_object_get(en, "fullUrl"), "resource",
                          json_object_get(en, "resource")));
            json_decref(tx);
        }
    }
    ehr_arena_free(&a);
    if (st) {
        json_decref(coll);
        return st;
    }
    *bundle = coll;
    return EHR_OK;
}

struct stored {
    ehr_buf raw;
    bool found;
    char status[16];
};

static ehr_status stored_cb(void *p, const ehr_store_hl7 *m)
{
    struct stored *s = p;
    s->found = true;
    snprintf(s->status, sizeof s->status, "%s", m->status);
    return ehr_buf_append(&s->raw, m->raw, m->raw_len);
}

ehr_status ehr_hl7_reprocess(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, int64_t id,
                             ehr_hl7_reply *out, ehr_err *err)
{
    memset(out, 0, sizeof *out);
    ehr_store_conn *c;
    struct stored s = {.raw = EHR_BUF_INIT};
    ehr_store_hl7_q q = {.id = id, .direction = "in", .with_raw = true};
    ehr_status st = conn(e, &c, err);
    if (!st)
        st = EHR_STORE_CALL(c, hl7_list, &q, stored_cb, &s, err);
    if (!st && !s.found)
        st = ehr_err_set(err, EHR_ENOTFOUND, "no inbound HL7 message %lld", (long long)id);
    if (st) {
        ehr_buf_free(&s.raw);
        return st;
    }
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m = NULL;
    ehr_hl7_error he = {0};
    st = ehr_hl7_parse(s.raw.data ? s.raw.data : "", s.raw.len, &e->cfg.limits, a, &m, &he);
    if (!st)
        st = check_header(m, &he);
    if (st) {
        ehr_err_set(err, st, "message %lld cannot be applied: %s", (long long)id, he.text);
    } else {
        out->id = id;
        out->stored = true;
        st = process(e, ctx, m, id, out);
    }
    ehr_arena_free(&a);
    ehr_buf_free(&s.raw);
    return st;
}

struct pending {
    size_t n, cap;
    int64_t *ids;
};

static ehr_status pending_cb(void *p, const ehr_store_hl7 *m)
{
    struct pending *pd = p;
    if (pd->n == pd->cap) {
        size_t cap = pd->cap ? pd->cap * 2 : 16;
        int64_t *ids = realloc(pd->ids, cap * sizeof *ids);
        if (!ids)
            return EHR_ENOMEM;
        pd->ids = ids;
        pd->cap = cap;
    }
    pd->ids[pd->n++] = m->id;
    return EHR_OK;
}

ehr_status ehr_hl7_recover(ehr_hl7_engine *e, const ehr_repo_ctx *ctx, size_t *n, ehr_err *err)
{
    *n = 0;
    ehr_store_conn *c;
    struct pending pd = {0};
    ehr_store_hl7_q q = {.direction = "in", .status = "received", .oldest_first = true};
    ehr_status st = conn(e, &c, err);
    if (!st)
        st = EHR_STORE_CALL(c, hl7_list, &q, pending_cb, &pd, err);
    for (size_t i = 0; !st && i < pd.n; i++) {
        ehr_hl7_reply r;
        ehr_err e2 = {{0}};
        if (!ehr_hl7_reprocess(e, ctx, pd.ids[i], &r, &e2))
            (*n)++;
        ehr_hl7_reply_free(&r);
    }
    free(pd.ids);
    return st;
}
