/*
 * hl7_http.c - POST /hl7v2: one HL7 v2 message over HTTP, answered with
 * its ACK, for systems without MLLP. Mounted by ehr serve after the auth
 * guard, which has already checked the access token (src/auth/guard.c);
 * the message's writes go through the repository as that caller.
 *
 *   POST /hl7v2
 *   Authorization: Bearer TOKEN
 *   Content-Type: x-application/hl7-v2+er7   (or text/plain)
 *   MSH|^~\&|...
 *
 * 200 with the ACK (Content-Type x-application/hl7-v2+er7) whatever its
 * code (AA, AE, AR: the HL7 answer is in MSA-1); 204 when the sender asked
 * for no acknowledgement (enhanced mode, NE); 403 when the caller may not
 * register patients; 415 for another content type; 503 when the message
 * could not be stored (the body is an AE: send again).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/hl7_http.h"

static bool er7_type(const char *ct)
{
    if (!ct)
        return false;
    static const char *const ok[] = {"x-application/hl7-v2+er7", "application/hl7-v2",
                                     "text/plain"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = strlen(ok[i]);
        if (!strncasecmp(ct, ok[i], n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
            return true;
    }
    return false;
}

static void text(ehr_http_response *res, int status, const char *msg)
{
    res->status = status;
    res->content_type = "text/plain; charset=utf-8";
    ehr_buf_puts(&res->body, msg);
    ehr_buf_putc(&res->body, '\n');
}

int ehr_hl7_http_handler(void *p, ehr_http_request *req, ehr_http_response *res)
{
    ehr_hl7_engine *engine = p;
    if (strcmp(req->path, "/hl7v2") && strcmp(req->path, "/hl7v2/"))
        return EHR_HTTP_NEXT;
    if (strcmp(req->method, "POST")) {
        ehr_http_set_header(req, res, "Allow", "POST");
        text(res, 405, "POST one HL7 v2 message to /hl7v2");
        return EHR_HTTP_HANDLED;
    }
    const ehr_repo_ctx *ctx = req->user;
    if (!ctx) {
        text(res, 401, "this request needs an access token");
        return EHR_HTTP_HANDLED;
    }
    /* an HL7 feed registers and updates patients: callers limited to some
       patients' records (patients, panel-limited clinicians) may not send */
    if (ctx->policy) {
        ehr_repo_limit lim;
        ehr_err err = {{0}};
        if (ctx->policy->decide(ctx->policy, EHR_ACCESS_CREATE, "Patient", &lim, &err) ||
            ctx->policy->decide(ctx->policy, EHR_ACCESS_UPDATE, "Patient", &lim, &err) ||
            lim.limited) {
            text(res, 403,
                 "sending HL7 v2 messages needs the right to create and update any Patient "
                 "(scope user/*.cu or system/*.cu, and a role not limited to some patients)");
            return EHR_HTTP_HANDLED;
        }
    }
    if (!er7_type(ehr_http_header(req, "Content-Type"))) {
        text(res, 415, "send the message as x-application/hl7-v2+er7 (or text/plain)");
        return EHR_HTTP_HANDLED;
    }
    ehr_hl7_reply r;
    ehr_status st = ehr_hl7_receive(engine, ctx, req->body, req->body_len, &r);
    ehr_buf *ack = r.app.len ? &r.app : &r.accept;
    if (ack->len) {
        res->status = st ? 503 : 200;
        res->content_type = "x-application/hl7-v2+er7";
        ehr_buf_append(&res->body, ack->data, ack->len);
    } else {
        res->status = st ? 503 : 204;
    }
    ehr_hl7_reply_free(&r);
    return EHR_HTTP_HANDLED;
}
