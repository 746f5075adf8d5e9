/*
 * ack.c - acknowledgements (HL7 v2.5.1 2.9 and 2.14.1: MSA, ERR) and
 * timestamps (DTM, 2A.3.22).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hl7v2/hl7v2.h"

const char *ehr_hl7_ack_code_str(ehr_hl7_ack_code c)
{
    static const char *const s[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
    return (unsigned)c < sizeof s / sizeof s[0] ? s[c] : "AR";
}

bool ehr_hl7_enhanced(const ehr_hl7_msg *m)
{
    if (!m || !m->n_segs)
        return false;
    return ehr_hl7_present(&m->segs[0], 15) || ehr_hl7_present(&m->segs[0], 16);
}

bool ehr_hl7_ack_wanted(const char *condition, bool ok)
{
    if (!condition || !*condition || !strcmp(condition, "AL"))
        return true;
    if (!strcmp(condition, "NE"))
        return false;
    if (!strcmp(condition, "ER"))
        return !ok;
    if (!strcmp(condition, "SU"))
        return ok;
    return true; /* an unknown condition: answer rather than stay silent */
}

/* Error severity (table 0516) and whether ERR-1 (ELD, before v2.5) is wanted. */
static bool old_version(const char *v)
{
    return v && !strncmp(v, "2.", 2) && v[2] >= '1' && v[2] <= '4' && !isdigit((unsigned char)v[3]);
}

static const char *code_text(int code)
{
    switch (code) {
    case 0:
        return "Message accepted";
    case 100:
        return "Segment sequence error";
    case 101:
        return "Required field missing";
    case 102:
        return "Data type error";
    case 103:
        return "Table value not found";
    case 200:
        return "Unsupported message type";
    case 201:
        return "Unsupported event code";
    case 202:
        return "Unsupported processing id";
    case 203:
        return "Unsupported version id";
    case 204:
        return "Unknown key identifier";
    case 205:
        return "Duplicate key identifier";
    case 206:
        return "Application record locked";
    default:
        return "Application internal error";
    }
}

ehr_status ehr_hl7_ack(const ehr_hl7_msg *m, ehr_hl7_ack_code code, const ehr_hl7_error *error,
                       const char *app, const char *facility, const char *ack_id, ehr_buf *out)
{
    ehr_hl7_msg defl = {
        .field_sep = '|', .comp_sep = '^', .rep_sep = '~', .esc = '\\', .sub_sep = '&'};
    const ehr_hl7_msg *sep = m ? m : &defl;
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    char f = sep->field_sep, c = sep->comp_sep, sc = sep->sub_sep;
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y%m%d%H%M%S+0000", &tm);
    ehr_status st = ehr_buf_printf(out, "MSH%c%c%c%c%c", f, c, sep->rep_sep, sep->esc, sc);
    if (!st && sep->trunc)
        st = ehr_buf_putc(out, sep->trunc);
    /* MSH-3..6: we send, the original sender receives */
    const char *parts[] = {app, facility, h.sending_app, h.sending_facility};
    for (size_t i = 0; i < 4 && !st; i++) {
        st = ehr_buf_putc(out, f);
        st = st ? st : ehr_hl7_escape(sep, parts[i] ? parts[i] : "", out);
    }
    const char *event = h.event && *h.event ? h.event : "";
    const char *version = h.version && *h.version ? h.version : "2.5.1";
    const char *proc = h.processing && *h.processing ? h.processing : "P";
    st = st ? st : ehr_buf_printf(out, "%c%s%c%cACK%c", f, now, f, f, c);
    st = st ? st : ehr_hl7_escape(sep, event, out);
    st = st ? st : ehr_buf_printf(out, "%cACK%c", c, f);
    st = st ? st : ehr_hl7_escape(sep, ack_id ? ack_id : "", out);
    st = st ? st : ehr_buf_putc(out, f);
    st = st ? st : ehr_hl7_escape(sep, proc, out);
    st = st ? st : ehr_buf_putc(out, f);
    st = st ? st : ehr_hl7_escape(sep, version, out);
    /* MSA-1 code, MSA-2 the control id acknowledged, MSA-3 text (original mode readers) */
    st = st ? st : ehr_buf_printf(out, "\rMSA%c%s%c", f, ehr_hl7_ack_code_str(code), f);
    st = st ? st : ehr_hl7_escape(sep, h.control_id ? h.control_id : "", out);
    if (!st && error && error->text[0]) {
        st = ehr_buf_putc(out, f);
        st = st ? st : ehr_hl7_escape(sep, error->text, out);
    }
    st = st ? st : ehr_buf_putc(out, '\r');
    if (!st && error && (code != EHR_HL7_AA && code != EHR_HL7_CA)) {
        int ec = error->code ? error->code : 207;
        char num[16];
        st = ehr_buf_printf(out, "ERR%c", f);
        if (!st && old_version(h.version)) {
            /* ERR-1 ELD (v2.4 and before): segment^sequence^field^code&text&HL70357 */
            st = ehr_hl7_escape(sep, error->seg, out);
            st = st ? st
                    : ehr_buf_printf(out, "%c%d%c%d%c%d%c", c, error->seg_seq, c, error->field, c,
                                     ec, sc);
            st = st ? st : ehr_hl7_escape(sep, code_text(ec), out);
            st = st ? st : ehr_buf_printf(out, "%cHL70357", sc);
        }
        /* ERR-2 ERL: segment^sequence^field^repetition^component^sub-component */
        st = st ? st : ehr_buf_putc(out, f);
        if (!st && error->seg[0]) {
            st = ehr_hl7_escape(sep, error->seg, out);
            st = st ? st : ehr_buf_printf(out, "%c%d", c, error->seg_seq ? error->seg_seq : 1);
            if (!st && error->field) {
                st = ehr_buf_printf(out, "%c%d", c, error->field);
                if (!st && (error->rep || error->comp))
                    st = ehr_buf_printf(out, "%c%d%c%d", c, error->rep ? error->rep : 1, c,
                                        error->comp ? error->comp : 1);
                if (!st && error->sub)
                    st = ehr_buf_printf(out, "%c%d", c, error->sub);
            }
        }
        /* ERR-3 code^text^HL70357, ERR-4 severity E, ERR-8 user message */
        snprintf(num, sizeof num, "%d", ec);
        st = st ? st : ehr_buf_printf(out, "%c%s%c", f, num, c);
        st = st ? st : ehr_hl7_escape(sep, code_text(ec), out);
        st = st ? st : ehr_buf_printf(out, "%cHL70357%cE%c%c%c%c", c, f, f, f, f, f);
        st = st ? st : ehr_hl7_escape(sep, error->text, out);
        st = st ? st : ehr_buf_putc(out, '\r');
    }
    return st;
}

bool ehr_hl7_dtm_to_fhir(const char *dtm, bool date_only, char *out, size_t cap)
{
    size_t n = 0;
    while (isdigit((unsigned char)dtm[n]))
        n++;
    if (n < 4 || cap < 40 || (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14))
        return false;
    const char *p = dtm + n;
    char frac[8] = "";
    if (*p == '.') {
        size_t k = 0;
        p++;
        while (isdigit((unsigned char)*p)) {
            if (k < 6)
                frac[k++] = *p;
            p++;
        }
        frac[k] = '\0';
        if (n != 14 || k == 0)
            return false;
    }
    char zone[8] = "";
    if (*p == '+' || *p == '-') {
        if (strlen(p) != 5)
            return false;
        for (int i = 1; i < 5; i++)
            if (!isdigit((unsigned char)p[i]))
                return false;
        snprintf(zone, sizeof zone, "%c%c%c:%c%c", p[0], p[1], p[2], p[3], p[4]);
    } else if (*p) {
        return false;
    }
    int v[6] = {0};
    for (size_t i = 0; i < (n - 4) / 2 && i < 5; i++)
        v[i + 1] = (dtm[4 + 2 * i] - '0') * 10 + (dtm[5 + 2 * i] - '0');
    if ((n >= 6 && (v[1] < 1 || v[1] > 12)) || (n >= 8 && (v[2] < 1 || v[2] > 31)) ||
        (n >= 10 && v[3] > 23) || (n >= 12 && v[4] > 59) || (n >= 14 && v[5] > 60))
        return false;
    if (date_only || n <= 8) {
        snprintf(out, cap, "%.4s%s%.2s%s%.2s", dtm, n >= 6 ? "-" : "", n >= 6 ? dtm + 4 : "",
                 n >= 8 ? "-" : "", n >= 8 ? dtm + 6 : "");
        return true;
    }
    /* FHIR dateTime with a time needs seconds and a zone; without a zone
       in the message, the time is read as UTC (documented in docs/hl7v2.md) */
    snprintf(out, cap, "%.4s-%.2s-%.2sT%.2s:%s:%s%s%s%s", dtm, dtm + 4, dtm + 6, dtm + 8,
             n >= 12 ? (char[3]){dtm[10], dtm[11], 0} : "00",
             n >= 14 ? (char[3]){dtm[12], dtm[13], 0} : "00", frac[0] ? "." : "", frac,
             zone[0] ? zone : "Z");
    return true;
}
