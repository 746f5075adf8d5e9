/*
 * auditview.c - the audit log as FHIR AuditEvents, for auditors (and
 * admins): GET /fhir/AuditEvent/SEQ and GET /fhir/AuditEvent?params.
 *
 * AuditEvents are not stored resources: they are the hash-chained audit
 * records, turned into IHE BALP-style AuditEvents on the way out
 * (audit.h). Search parameters, newest first:
 *   date=[ge|gt|le|lt|eq]TIME (repeatable), agent= or user=USERNAME,
 *   patient=[Patient/]ID, subtype= or action=INTERACTION (read, search,
 *   create, login, break-glass ...), outcome=0|4|8, _count (50, at most
 *   1000; narrow further pages with date).
 * Reading the log is itself audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/auth_int.h"
#include "core/json.h"
#include "core/util.h"

struct view {
    const char *user, *patient, *action, *outcome;
    size_t want, n;
    int64_t last_seq;
    json_t *entries;
    const char *base;
    bool more;
};

static bool has_patient(const json_t *ev, const char *p)
{
    const json_t *pts = json_object_get(ev, "patients");
    for (size_t i = 0; i < json_array_size(pts); i++)
        if (!strcmp(json_string_value(json_array_get(pts, i)) ?: "", p))
            return true;
    return false;
}

static const char *outcome_code(const char *o)
{
    return !o || !strcmp(o, "ok") ? "0" : !strcmp(o, "failed") ? "8" : "4";
}

static ehr_status view_one(void *p, int64_t seq, int64_t time, const char *hash, const char *event,
                           size_t len)
{
    struct view *v = p;
    json_t *ev = json_loadb(event, len, 0, NULL);
    if (!ev)
        return EHR_OK;
    bool keep = (!v->user || !strcmp(auth_str(ev, "user") ?: "", v->user)) &&
                (!v->action || !strcmp(auth_str(ev, "action") ?: "", v->action)) &&
                (!v->patient || has_patient(ev, v->patient)) &&
                (!v->outcome || !strcmp(outcome_code(auth_str(ev, "outcome")), v->outcome));
    json_decref(ev);
    if (!keep)
        return EHR_OK;
    if (v->n == v->want) {
        v->more = true;
        return EHR_EINTERNAL; /* stop: a next page exists */
    }
    json_t *ae = ehr_audit_to_fhir(seq, time, event, len);
    char url[512];
    snprintf(url, sizeof url, "%s/AuditEvent/%lld", v->base, (long long)seq);
    json_array_append_new(v->entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url, "resource",
                                                ae, "search", "mode", "match"));
    v->n++;
    v->last_seq = seq;
    return EHR_OK;
}

/* date=geX etc. into the query's range; false when malformed. */
static bool date_param(const char *v, ehr_store_audit_q *q)
{
    char op[3] = "eq";
    if (strlen(v) > 2 && v[0] >= 'a' && v[0] <= 'z') {
        memcpy(op, v, 2);
        v += 2;
    }
    int64_t t;
    if (!ehr_time_parse(v, &t))
        return false;
    if (!strcmp(op, "ge") || !strcmp(op, "gt"))
        q->since = t + (op[1] == 't');
    else if (!strcmp(op, "le") || !strcmp(op, "lt"))
        q->until = t - (op[1] == 't');
    else if (!strcmp(op, "eq")) {
        /* the day, second ... the value names: approximate it by its length */
        int64_t span = strlen(v) <= 4    ? 366LL * 86400
                       : strlen(v) <= 7  ? 31LL * 86400
                       : strlen(v) <= 10 ? 86400
                                         : 1;
        q->since = t;
        q->until = t + span * 1000000 - 1;
    } else
        return false;
    return true;
}

static void fail(ehr_auth *a, ehr_http_request *req, ehr_http_response *res, int status,
                 const char *code, const char *msg)
{
    if (a->cfg.error_body) {
        a->cfg.error_body(NULL, status, msg, res);
    } else {
        auth_send_json(req, res, status, json_pack("{s:s}", "error", msg));
    }
    res->status = status;
    (void)code;
}

bool auth_audit_view(ehr_auth *a, ehr_http_request *req, ehr_http_response *res,
                     const ehr_repo_ctx *who)
{
    const char *p = req->path;
    if (strncmp(p, "/fhir/AuditEvent", 16) || (p[16] && p[16] != '/'))
        return false;
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        ehr_http_set_header(req, res, "Allow", "GET");
        fail(a, req, res, 405, "not-supported",
             "AuditEvents are written by the server only; read them with GET");
        return true;
    }
    const char *id = p[16] == '/' ? p + 17 : NULL;
    ehr_repo_limit lim;
    ehr_err err = {{0}};
    ehr_status st = who->policy
                        ? who->policy->decide(who->policy, id ? EHR_ACCESS_READ : EHR_ACCESS_SEARCH,
                                              "AuditEvent", &lim, &err)
                        : EHR_OK;
    json_t *ev = json_pack("{s:s, s:s, s:s}", "action", id ? "read" : "search", "outcome",
                           st ? "denied" : "ok", "type", "AuditEvent");
    if (id)
        json_object_set_new(ev, "id", json_string(id));
    else
        json_object_set_new(ev, "query", json_string(req->raw_query));
    if (auth_audit(a, who, ev, NULL)) {
        fail(a, req, res, 500, "exception", "the access could not be audited");
        return true;
    }
    if (st) {
        fail(a, req, res, 403, "forbidden", err.msg[0] ? err.msg : "access denied");
        return true;
    }
    ehr_store_conn *c;
    /* every record journaled so far is in the chain before it is read */
    if (ehr_repo_audit_sync(a->repo, NULL) || ehr_repo_conn(a->repo, &c, NULL)) {
        fail(a, req, res, 503, "transient", "the database is not available");
        return true;
    }
    const char *base = auth_fhir_base(a, req);
    struct view v = {.entries = json_array(), .base = base, .want = 50};
    ehr_store_audit_q q = {.newest_first = true};
    if (id) {
        char *end;
        long long seq = strtoll(id, &end, 10);
        q.from_seq = seq;
        q.limit = 1;
        q.newest_first = false;
        v.want = 1;
        if (*end || seq <= 0 || EHR_STORE_CALL(c, audit_list, &q, view_one, &v, NULL) || v.n != 1 ||
            v.last_seq != seq) {
            json_decref(v.entries);
            fail(a, req, res, 404, "not-found", "no such AuditEvent");
            return true;
        }
        json_t *r = json_incref(json_object_get(json_array_get(v.entries, 0), "resource"));
        json_decref(v.entries);
        res->status = 200;
        ehr_buf_reset(&res->body);
        ehr_json_dump(r, &res->body, EHR_JSON_COMPACT);
        json_decref(r);
        res->content_type = "application/fhir+json; charset=utf-8";
        return true;
    }
    for (size_t i = 0; i < req->n_params; i++) {
        const char *n = req->params[i].name, *val = req->params[i].value;
        if (!strcmp(n, "date")) {
            if (!date_param(val, &q)) {
                json_decref(v.entries);
                fail(a, req, res, 400, "value", "date is [ge|gt|le|lt|eq]YYYY-MM-DD[Thh:mm:ssZ]");
                return true;
            }
        } else if (!strcmp(n, "agent") || !strcmp(n, "user")) {
            v.user = val;
        } else if (!strcmp(n, "patient")) {
            v.patient = !strncmp(val, "Patient/", 8) ? val + 8 : val;
        } else if (!strcmp(n, "subtype") || !strcmp(n, "action")) {
            v.action = val;
        } else if (!strcmp(n, "outcome")) {
            v.outcome = val;
        } else if (!strcmp(n, "_count")) {
            long k = strtol(val, NULL, 10);
            v.want = k < 1 ? 1 : k > 1000 ? 1000 : (size_t)k;
        }
    }
    /* a cheap prefilter in the database, the exact match above */
    char text[160];
    if (v.patient) {
        snprintf(text, sizeof text, "\"%.100s\"", v.patient);
        q.text = text;
    } else if (v.user) {
        snprintf(text, sizeof text, "\"%.100s\"", v.user);
        q.text = text;
    }
    st = EHR_STORE_CALL(c, audit_list, &q, view_one, &v, NULL);
    if (st && !v.more) {
        json_decref(v.entries);
        fail(a, req, res, 500, "exception", "the audit log could not be read");
        return true;
    }
    json_t *b = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "searchset", "entry",
                          v.entries);
    json_t *links = json_array();
    json_array_append_new(
        links, json_pack("{s:s, s:s}", "relation", "self", "url",
                         ehr_arena_printf(req->arena, "%s/AuditEvent?%s", base, req->raw_query)));
    json_object_set_new(b, "link", links);
    res->status = 200;
    ehr_buf_reset(&res->body);
    ehr_json_dump(b, &res->body, EHR_JSON_COMPACT);
    json_decref(b);
    res->content_type = "application/fhir+json; charset=utf-8";
    return true;
}
