#include "rest/bundle.h"

#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"
#include "search/search.h"

void rest_bundle_open(struct rest_bundle *bb, struct rctx *x, const char *type, long long total)
{
    memset(bb, 0, sizeof *bb);
    bb->x = x;
    bb->history = !strcmp(type, "history");
    char id[EHR_ID_LEN], now[EHR_INSTANT_LEN];
    ehr_id_new(id);
    ehr_time_now(now);
    ehr_buf_printf(&bb->b,
                   "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},"
                   "\"type\":\"%s\"",
                   id, now, type);
    if (total >= 0)
        ehr_buf_printf(&bb->b, ",\"total\":%lld", total);
    ehr_buf_puts(&bb->b, ",\"link\":[");
}

void rest_bundle_link(struct rest_bundle *bb, const char *relation, const char *url)
{
    if (bb->b.data[bb->b.len - 1] != '[')
        ehr_buf_putc(&bb->b, ',');
    ehr_buf_printf(&bb->b, "{\"relation\":\"%s\",\"url\":\"", relation);
    ehr_buf_json_escape(&bb->b, url, strlen(url));
    ehr_buf_puts(&bb->b, "\"}");
}

void rest_bundle_entries(struct rest_bundle *bb)
{
    ehr_buf_putc(&bb->b, ']');
}

static void entry_start(struct rest_bundle *bb)
{
    /* FHIR JSON has no empty arrays: "entry" appears with its first entry */
    ehr_buf_puts(&bb->b, bb->n_entries++ ? ",{" : ",\"entry\":[{");
}

ehr_status rest_bundle_row(void *ctx, const ehr_store_rec *rec)
{
    struct rest_bundle *bb = ctx;
    entry_start(bb);
    rest_full_url(bb->x, &bb->b, rec->type, rec->id);
    if (!rec->deleted && rec->content) {
        ehr_buf_puts(&bb->b, ",\"resource\":");
        if (bb->subset && !rec->included) {
            ehr_status st = ehr_search_subset(bb->subset, rec->content, rec->content_len, &bb->b);
            if (st)
                return st;
        } else {
            ehr_buf_append(&bb->b, rec->content, rec->content_len);
        }
    }
    if (bb->history) {
        const char *m = rec->method ? rec->method : "PUT";
        bool post = !strcmp(m, "POST");
        ehr_buf_printf(&bb->b, ",\"request\":{\"method\":\"%s\",\"url\":\"", m);
        ehr_buf_json_escape(&bb->b, rec->type, strlen(rec->type));
        if (!post) {
            ehr_buf_putc(&bb->b, '/');
            ehr_buf_json_escape(&bb->b, rec->id, strlen(rec->id));
        }
        char lu[EHR_INSTANT_LEN];
        ehr_time_format(rec->last_updated, lu);
        ehr_buf_printf(&bb->b,
                       "\"},\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%lld\\\"\","
                       "\"lastModified\":\"%s\"}",
                       rec->deleted ? "204 No Content"
                       : post       ? "201 Created"
                                    : "200 OK",
                       (long long)rec->version, lu);
    } else {
        ehr_buf_puts(&bb->b, rec->included ? ",\"search\":{\"mode\":\"include\"}"
                                           : ",\"search\":{\"mode\":\"match\"}");
    }
    ehr_buf_putc(&bb->b, '}');
    return bb->b.data ? EHR_OK : EHR_ENOMEM;
}

void rest_bundle_outcome(struct rest_bundle *bb, const ehr_fhir_issues *issues)
{
    json_t *oo = ehr_fhir_outcome_new(issues);
    entry_start(bb);
    ehr_buf_puts(&bb->b, "\"resource\":");
    ehr_json_dump(oo, &bb->b, EHR_JSON_COMPACT);
    ehr_buf_puts(&bb->b, ",\"search\":{\"mode\":\"outcome\"}}");
    json_decref(oo);
}

void rest_bundle_send(struct rest_bundle *bb)
{
    ehr_buf_puts(&bb->b, bb->n_entries ? "]}" : "}");
    rest_send_text(bb->x, 200, bb->b.data, bb->b.len);
}

void rest_bundle_free(struct rest_bundle *bb)
{
    ehr_buf_free(&bb->b);
}
