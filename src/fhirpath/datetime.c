/*
 * datetime.c - partial dates, dateTimes and times of FHIRPath.
 *
 * A value keeps the precision it was written with (@2014, @2014-01-05T10,
 * @T10:30): comparisons go component by component and answer "unknown"
 * (empty) when one value stops before the other (FHIRPath N1 section 6.1.1
 * and 6.2), with seconds and milliseconds taken together as one decimal
 * component. Values with a time and a time zone are compared in UTC.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fhirpath/fhirpath_int.h"

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int fp_days_in_month(int year, int month)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 31;
    return month == 2 && is_leap(year) ? 29 : dim[month - 1];
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t len, size_t i, int n)
{
    if (i + (size_t)n > len)
        return -1;
    int v = 0;
    for (int k = 0; k < n; k++) {
        char c = s[i + (size_t)k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

/* hh(:mm(:ss(.fff)?)?)? at s[*i]; fills d, sets prec. */
static bool parse_time(const char *s, size_t len, size_t *i, fp_dt *d)
{
    int h = digits(s, len, *i, 2);
    if (h < 0 || h > 23)
        return false;
    d->hour = (uint8_t)h;
    d->prec = EHR_FHIRPATH_PREC_HOUR;
    *i += 2;
    if (*i < len && s[*i] == ':') {
        int m = digits(s, len, *i + 1, 2);
        if (m < 0 || m > 59)
            return false;
        d->minute = (uint8_t)m;
        d->prec = EHR_FHIRPATH_PREC_MINUTE;
        *i += 3;
        if (*i < len && s[*i] == ':') {
            int sec = digits(s, len, *i + 1, 2);
            if (sec < 0 || sec > 59)
                return false;
            d->second = (uint8_t)sec;
            d->prec = EHR_FHIRPATH_PREC_SECOND;
            *i += 3;
            if (*i + 1 < len && s[*i] == '.' && s[*i + 1] >= '0' && s[*i + 1] <= '9') {
                (*i)++;
                int ms = 0, n = 0;
                while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
                    if (n < 3)
                        ms = ms * 10 + (s[*i] - '0');
                    n++;
                    (*i)++;
                }
                for (int k = n; k < 3; k++)
                    ms *= 10;
                d->ms = (uint16_t)ms;
                d->ms_digits = (uint8_t)(n > 9 ? 9 : n);
                d->prec = EHR_FHIRPATH_PREC_MILLISECOND;
            }
        }
    }
    return true;
}

static bool parse_tz(const char *s, size_t len, size_t *i, fp_dt *d)
{
    if (*i >= len)
        return true;
    if (s[*i] == 'Z') {
        d->has_tz = true;
        d->tz_z = true;
        d->tz = 0;
        (*i)++;
        return true;
    }
    if (s[*i] == '+' || s[*i] == '-') {
        int h = digits(s, len, *i + 1, 2);
        if (h < 0 || h > 14 || *i + 3 >= len || s[*i + 3] != ':')
            return false;
        int m = digits(s, len, *i + 4, 2);
        if (m < 0 || m > 59)
            return false;
        d->has_tz = true;
        d->tz = (int16_t)((s[*i] == '-' ? -1 : 1) * (h * 60 + m));
        *i += 6;
        return true;
    }
    return true;
}

bool fp_dt_parse(const char *s, size_t len, int kind, fp_dt *out)
{
    fp_dt d;
    memset(&d, 0, sizeof d);
    size_t i = 0;
    if (kind == EHR_FHIRPATH_TIME) {
        if (!parse_time(s, len, &i, &d) || i != len)
            return false;
        *out = d;
        return true;
    }
    int y = digits(s, len, 0, 4);
    if (y < 0)
        return false;
    d.year = (int16_t)y;
    d.prec = EHR_FHIRPATH_PREC_YEAR;
    i = 4;
    if (i < len && s[i] == '-') {
        int m = digits(s, len, i + 1, 2);
        if (m < 1 || m > 12)
            return false;
        d.month = (uint8_t)m;
        d.prec = EHR_FHIRPATH_PREC_MONTH;
        i += 3;
        if (i < len && s[i] == '-') {
            int dd = digits(s, len, i + 1, 2);
            if (dd < 1 || dd > fp_days_in_month(y, m))
                return false;
            d.day = (uint8_t)dd;
            d.prec = EHR_FHIRPATH_PREC_DAY;
            i += 3;
        }
    }
    if (kind == EHR_FHIRPATH_DATE) {
        if (i != len)
            return false;
        *out = d;
        return true;
    }
    if (i < len && s[i] == 'T') {
        i++;
        if (i < len && d.prec == EHR_FHIRPATH_PREC_DAY) {
            if (!parse_time(s, len, &i, &d))
                return false;
            if (!parse_tz(s, len, &i, &d))
                return false;
        }
    } else if (i < len && d.prec == EHR_FHIRPATH_PREC_DAY) {
        return false;
    }
    if (i != len)
        return false;
    *out = d;
    return true;
}

static size_t put_ms(const fp_dt *d, char *buf, size_t size)
{
    int n = d->ms_digits;
    if (n == 1 && d->ms % 100 == 0)
        return (size_t)snprintf(buf, size, ".%d", d->ms / 100);
    if (n == 2 && d->ms % 10 == 0)
        return (size_t)snprintf(buf, size, ".%02d", d->ms / 10);
    return (size_t)snprintf(buf, size, ".%03d", d->ms);
}

static size_t put_time(const fp_dt *d, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "%02d", d->hour);
    if (d->prec >= EHR_FHIRPATH_PREC_MINUTE && o < size)
        o += (size_t)snprintf(buf + o, size - o, ":%02d", d->minute);
    if (d->prec >= EHR_FHIRPATH_PREC_SECOND && o < size)
        o += (size_t)snprintf(buf + o, size - o, ":%02d", d->second);
    if (d->prec >= EHR_FHIRPATH_PREC_MILLISECOND && o < size)
        o += put_ms(d, buf + o, size - o);
    return o < size ? o : size - 1;
}

size_t fp_dt_format(const fp_dt *d, int kind, char *buf, size_t size)
{
    if (kind == EHR_FHIRPATH_TIME)
        return put_time(d, buf, size);
    size_t o = (size_t)snprintf(buf, size, "%04d", d->year);
    if (d->prec >= EHR_FHIRPATH_PREC_MONTH && o < size)
        o += (size_t)snprintf(buf + o, size - o, "-%02d", d->month);
    if (d->prec >= EHR_FHIRPATH_PREC_DAY && o < size)
        o += (size_t)snprintf(buf + o, size - o, "-%02d", d->day);
    if (kind == EHR_FHIRPATH_DATETIME && d->prec >= EHR_FHIRPATH_PREC_HOUR && o + 1 < size) {
        buf[o++] = 'T';
        o += put_time(d, buf + o, size - o);
        if (d->has_tz && o < size) {
            if (d->tz_z && d->tz == 0)
                o += (size_t)snprintf(buf + o, size - o, "Z");
            else {
                int t = d->tz < 0 ? -d->tz : d->tz;
                o += (size_t)snprintf(buf + o, size - o, "%c%02d:%02d", d->tz < 0 ? '-' : '+',
                                      t / 60, t % 60);
            }
        }
    }
    return o < size ? o : size - 1;
}

bool fp_dt_valid(const fp_dt *d, int kind)
{
    if (kind == EHR_FHIRPATH_TIME)
        return d->hour < 24 && d->minute < 60 && d->second < 60 && d->ms < 1000;
    if (d->year < 1 || d->year > 9999)
        return false;
    if (d->prec >= EHR_FHIRPATH_PREC_MONTH && (d->month < 1 || d->month > 12))
        return false;
    if (d->prec >= EHR_FHIRPATH_PREC_DAY &&
        (d->day < 1 || d->day > fp_days_in_month(d->year, d->month)))
        return false;
    return true;
}

/* Shift a value with a time and a zone to UTC (fields only; prec kept). */
static fp_dt to_utc(const fp_dt *d)
{
    fp_dt r = *d;
    int64_t days = days_from_civil(d->year, d->month ? d->month : 1, d->day ? d->day : 1);
    int64_t mins = days * 1440 + d->hour * 60 + d->minute - d->tz;
    int64_t dd = mins >= 0 ? mins / 1440 : -((-mins + 1439) / 1440);
    int64_t rem = mins - dd * 1440;
    int64_t y;
    int m, day;
    civil_from_days(dd, &y, &m, &day);
    r.year = (int16_t)y;
    r.month = (uint8_t)m;
    r.day = (uint8_t)day;
    r.hour = (uint8_t)(rem / 60);
    r.minute = (uint8_t)(rem % 60);
    r.tz = 0;
    return r;
}

static int sgn(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

int fp_dt_cmp(const fp_dt *a, const fp_dt *b, int kind)
{
    fp_dt x = *a, y = *b;
    int first = EHR_FHIRPATH_PREC_YEAR;
    if (kind == EHR_FHIRPATH_TIME) {
        first = EHR_FHIRPATH_PREC_HOUR;
    } else if (x.prec >= EHR_FHIRPATH_PREC_HOUR && y.prec >= EHR_FHIRPATH_PREC_HOUR) {
        /* Both have a time: compare in UTC. With one zone missing the
         * moment of the other is unknown (no default zone is assumed). */
        if (x.has_tz != y.has_tz)
            return 2;
        if (x.has_tz) {
            x = to_utc(&x);
            y = to_utc(&y);
        }
    }
    int last = x.prec < y.prec ? x.prec : y.prec;
    if (last >= EHR_FHIRPATH_PREC_SECOND)
        last = EHR_FHIRPATH_PREC_SECOND;
    for (int p = first; p <= last; p++) {
        int r = 0;
        switch (p) {
        case EHR_FHIRPATH_PREC_YEAR:
            r = sgn(x.year, y.year);
            break;
        case EHR_FHIRPATH_PREC_MONTH:
            r = sgn(x.month, y.month);
            break;
        case EHR_FHIRPATH_PREC_DAY:
            r = sgn(x.day, y.day);
            break;
        case EHR_FHIRPATH_PREC_HOUR:
            r = sgn(x.hour, y.hour);
            break;
        case EHR_FHIRPATH_PREC_MINUTE:
            r = sgn(x.minute, y.minute);
            break;
        default:
            /* seconds and milliseconds as one decimal */
            r = sgn(x.second * 1000 + x.ms, y.second * 1000 + y.ms);
            break;
        }
        if (r)
            return r;
    }
    int px = x.prec >= EHR_FHIRPATH_PREC_SECOND ? EHR_FHIRPATH_PREC_SECOND : x.prec;
    int py = y.prec >= EHR_FHIRPATH_PREC_SECOND ? EHR_FHIRPATH_PREC_SECOND : y.prec;
    return px == py ? 0 : 2;
}

static const int64_t unit_ms[] = {
    [FP_CAL_DAY] = 86400000, [FP_CAL_HOUR] = 3600000,  [FP_CAL_MINUTE] = 60000,
    [FP_CAL_SECOND] = 1000,  [FP_CAL_MILLISECOND] = 1,
};

/* The calendar unit of a precision. */
static int prec_unit(int prec)
{
    switch (prec) {
    case EHR_FHIRPATH_PREC_YEAR:
        return FP_CAL_YEAR;
    case EHR_FHIRPATH_PREC_MONTH:
        return FP_CAL_MONTH;
    case EHR_FHIRPATH_PREC_DAY:
        return FP_CAL_DAY;
    case EHR_FHIRPATH_PREC_HOUR:
        return FP_CAL_HOUR;
    case EHR_FHIRPATH_PREC_MINUTE:
        return FP_CAL_MINUTE;
    case EHR_FHIRPATH_PREC_SECOND:
        return FP_CAL_SECOND;
    default:
        return FP_CAL_MILLISECOND;
    }
}

bool fp_dt_add(fp_dt *d, int kind, int unit, int64_t amount)
{
    if (unit == FP_CAL_WEEK) {
        unit = FP_CAL_DAY;
        if (__builtin_mul_overflow(amount, 7, &amount))
            return false;
    }
    if (amount > 4000000000000LL || amount < -4000000000000LL)
        return false;
    int have = prec_unit(d->prec);
    if (kind == EHR_FHIRPATH_TIME) {
        if (unit < FP_CAL_HOUR)
            return false;
        if (unit > have) { /* finer than the value: whole units of the value */
            amount = amount * unit_ms[unit] / unit_ms[have];
            unit = have;
        }
        int64_t day = 86400000;
        int64_t t = ((int64_t)d->hour * 3600 + d->minute * 60 + d->second) * 1000 + d->ms;
        t = ((t + amount * unit_ms[unit]) % day + day) % day;
        d->hour = (uint8_t)(t / 3600000);
        d->minute = (uint8_t)(t / 60000 % 60);
        d->second = (uint8_t)(t / 1000 % 60);
        d->ms = (uint16_t)(t % 1000);
        return true;
    }
    if (unit > have) {
        /* FHIRPath: a quantity finer than a partial value is converted to
         * the value's precision, dropping the remainder (@2014 + 23 months
         * is @2015; @2016 + 365 days is @2017). */
        if (unit == FP_CAL_MONTH) { /* have == year */
            amount /= 12;
            unit = FP_CAL_YEAR;
        } else {
            int64_t ms = amount * unit_ms[unit];
            if (have == FP_CAL_YEAR)
                amount = ms / unit_ms[FP_CAL_DAY] / 365;
            else if (have == FP_CAL_MONTH)
                amount = ms / unit_ms[FP_CAL_DAY] / 30;
            else
                amount = ms / unit_ms[have];
            unit = have;
        }
    }
    if (unit == FP_CAL_YEAR || unit == FP_CAL_MONTH) {
        int64_t months = (int64_t)d->year * 12 + (d->month ? d->month - 1 : 0);
        months += unit == FP_CAL_YEAR ? amount * 12 : amount;
        int64_t y = months >= 0 ? months / 12 : -1;
        if (y < 1 || y > 9999)
            return false;
        d->year = (int16_t)y;
        if (d->prec >= EHR_FHIRPATH_PREC_MONTH)
            d->month = (uint8_t)(months % 12 + 1);
        if (d->prec >= EHR_FHIRPATH_PREC_DAY) {
            int dim = fp_days_in_month(d->year, d->month);
            if (d->day > dim)
                d->day = (uint8_t)dim;
        }
        return true;
    }
    /* days and finer: through days since the epoch and milliseconds of the day */
    int64_t days = days_from_civil(d->year, d->month, d->day);
    int64_t ms = ((int64_t)d->hour * 3600 + d->minute * 60 + d->second) * 1000 + d->ms;
    int64_t total = ms + amount * unit_ms[unit];
    int64_t dd = total >= 0 ? total / 86400000 : -((-total + 86399999) / 86400000);
    days += dd;
    ms = total - dd * 86400000;
    int64_t y;
    int m, day;
    civil_from_days(days, &y, &m, &day);
    if (y < 1 || y > 9999)
        return false;
    d->year = (int16_t)y;
    d->month = (uint8_t)m;
    d->day = (uint8_t)day;
    d->hour = (uint8_t)(ms / 3600000);
    d->minute = (uint8_t)(ms / 60000 % 60);
    d->second = (uint8_t)(ms / 1000 % 60);
    d->ms = (uint16_t)(ms % 1000);
    if (d->prec == EHR_FHIRPATH_PREC_MILLISECOND && d->ms_digits < 3 && d->ms % 100 != 0)
        d->ms_digits = 3;
    return true;
}

bool fp_dt_now(const char *fixed, fp_dt *out)
{
    if (fixed)
        return fp_dt_parse(fixed, strlen(fixed), EHR_FHIRPATH_DATETIME, out);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    time_t t = ts.tv_sec;
    localtime_r(&t, &tm);
    memset(out, 0, sizeof *out);
    out->year = (int16_t)(tm.tm_year + 1900);
    out->month = (uint8_t)(tm.tm_mon + 1);
    out->day = (uint8_t)tm.tm_mday;
    out->hour = (uint8_t)tm.tm_hour;
    out->minute = (uint8_t)tm.tm_min;
    out->second = (uint8_t)(tm.tm_sec > 59 ? 59 : tm.tm_sec);
    out->ms = (uint16_t)(ts.tv_nsec / 1000000);
    out->ms_digits = 3;
    out->prec = EHR_FHIRPATH_PREC_MILLISECOND;
    out->has_tz = true;
    out->tz = (int16_t)(tm.tm_gmtoff / 60);
    return true;
}
