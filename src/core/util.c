#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t ehr_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ehr_time_format(int64_t us, char out[EHR_INSTANT_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((us % 1000000) / 1000));
    size_t n = strnlen(tmp, EHR_INSTANT_LEN - 1);
    memcpy(out, tmp, n);
    out[n] = '\0';
}

void ehr_time_now(char out[EHR_INSTANT_LEN])
{
    ehr_time_format(ehr_time_now_us(), out);
}

void ehr_time_http(int64_t us, char out[40])
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool ehr_time_parse(const char *s, int64_t *us)
{
    int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
    size_t n = strlen(s);
    if (n < 4 || (y = digits(s, 4)) < 0)
        return false;
    const char *p = s + 4;
    if (*p == '-') {
        if ((mo = digits(p + 1, 2)) < 1 || mo > 12)
            return false;
        p += 3;
        if (*p == '-') {
            if ((d = digits(p + 1, 2)) < 1 || d > 31)
                return false;
            p += 3;
            if (*p == 'T') {
                if ((h = digits(p + 1, 2)) < 0 || p[3] != ':' || (mi = digits(p + 4, 2)) < 0)
                    return false;
                p += 6;
                if (*p == ':') {
                    if ((sec = digits(p + 1, 2)) < 0)
                        return false;
                    p += 3;
                    if (*p == '.') {
                        int64_t scale = 100000;
                        p++;
                        while (*p >= '0' && *p <= '9') {
                            frac += (*p - '0') * scale;
                            scale /= 10;
                            p++;
                        }
                    }
                }
            }
        }
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = digits(p + 1, 2), om = (p[3] == ':') ? digits(p + 4, 2) : -1;
        if (oh < 0 || om < 0)
            return false;
        off = (int64_t)(oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p)
        return false;
    /* a real calendar moment: 2024-02-30 and 25:00 are not */
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || sec > 59)
        return false;
    /* days from civil (Howard Hinnant's algorithm) */
    int yy = y - (mo <= 2);
    int era = (yy >= 0 ? yy : yy - 399) / 400;
    unsigned yoe = (unsigned)(yy - era * 400);
    unsigned doy = (unsigned)((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + (int64_t)doe - 719468;
    int64_t t = days * 86400 + h * 3600 + mi * 60 + sec - off;
    *us = t * 1000000 + frac;
    return true;
}

void ehr_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n <= 0)
            continue;
        p += n;
        len -= (size_t)n;
    }
}

void ehr_id_new(char out[EHR_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    ehr_random(r, sizeof r);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[32] = '\0';
}

static ehr_log_level log_level = EHR_LOG_INFO;

void ehr_log_set_level(ehr_log_level lv)
{
    log_level = lv;
}

void ehr_log(ehr_log_level lv, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (lv > log_level)
        return;
    char ts[EHR_INSTANT_LEN];
    ehr_time_now(ts);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", ts, names[lv], line);
}
