/* read.c - read and vread (FHIR R4 3.1.0.1.x): stored bytes, unparsed. */
#include <stdlib.h>
#include <string.h>

#include "rest/rest_int.h"

void rest_read(struct rctx *x, const char *type, const char *id, const char *vid)
{
    int64_t version = 0;
    if (vid) {
        char *end;
        long long v = strtoll(vid, &end, 10);
        if (*vid == '\0' || *end || v <= 0) {
            rest_fail(x, 404, "not-found", NULL, "'%.40s' is not a version of %s/%s", vid, type,
                      id);
            return;
        }
        version = v;
    }
    ehr_repo_out out = {0};
    ehr_err err = {{0}};
    ehr_status st = ehr_repo_read(x->rest->repo, &x->who, type, id, version, &out, &err);
    if (st == EHR_EGONE) {
        rest_version_headers(x, &out, false);
        rest_fail_status(x, st, &err, NULL);
    } else if (st) {
        rest_fail_status(x, st, &err, NULL);
    } else {
        /* conditional read: If-None-Match with the current ETag */
        const char *inm = ehr_http_header(x->req, "If-None-Match");
        rest_version_headers(x, &out, false);
        if (inm && ehr_repo_parse_etag(inm) == out.version) {
            x->res->status = 304;
        } else {
            rest_send_text(x, 200, out.body.data, out.body.len);
        }
    }
    ehr_repo_out_free(&out);
}
