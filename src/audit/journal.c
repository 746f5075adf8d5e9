/*
 * journal.c - the audit journal file (see journal.h for the format and
 * the rules).
 */
#include "audit/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/util.h"

#define MAGIC "EHR-AUDIT-JOURNAL 1 "

struct ehr_journal {
    char *path;
    int fd;
    int64_t generation, prev_generation, prev_offset;
    int64_t start;  /* first record */
    int64_t end;    /* after the last byte written */
    int64_t synced; /* end at the last fdatasync */
    bool read_only;
    pthread_mutex_t lock; /* appends and the fd swap of a rotation */
};

static ehr_status sys_err(ehr_err *err, const char *what, const char *path)
{
    int e = errno;
    return ehr_err_set(err, e == ENOSPC || e == EDQUOT ? EHR_ELIMIT : EHR_EIO,
                       "audit journal %s: %s: %s", path, what, strerror(e));
}

/* Write all of buf at the file's end (O_APPEND); false with errno set. */
static bool write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* fsync the folder holding path, so that a create or rename is durable. */
static void sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

static int header(char *buf, size_t size, int64_t generation, int64_t prev_generation,
                  int64_t prev_offset)
{
    return snprintf(buf, size, MAGIC "%" PRId64 " %" PRId64 " %" PRId64 "\n", generation,
                    prev_generation, prev_offset);
}

/*
 * Open path and take its lock; again when it was renamed over meanwhile
 * (we must hold the lock of the file the name points to).
 */
static ehr_status open_locked(const char *path, int flags, int *out, ehr_err *err)
{
    for (int tries = 0; tries < 8; tries++) {
        int fd = open(path, flags | O_CLOEXEC, 0600);
        if (fd < 0)
            return sys_err(err, "cannot open", path);
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return ehr_err_set(err, EHR_EBUSY, "audit journal %s is in use by another process",
                                   path);
            errno = e;
            return sys_err(err, "cannot lock", path);
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            *out = fd;
            return EHR_OK;
        }
        close(fd);
    }
    return ehr_err_set(err, EHR_EBUSY, "audit journal %s keeps being replaced", path);
}

ehr_status ehr_journal_open(const char *path, int64_t new_generation, bool read_only,
                            ehr_journal **out, ehr_err *err)
{
    *out = NULL;
    ehr_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    j->fd = -1;
    j->read_only = read_only;
    ehr_status st = EHR_OK;
    if (!read_only)
        st = open_locked(path, O_RDWR | O_CREAT | O_APPEND, &j->fd, err);
    else if ((j->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        st = errno == ENOENT ? ehr_err_set(err, EHR_ENOTFOUND, "no audit journal %s", path)
                             : sys_err(err, "cannot open", path);
    struct stat sb;
    if (!st && fstat(j->fd, &sb) != 0)
        st = sys_err(err, "cannot stat", path);
    char head[96];
    if (!st && sb.st_size == 0 && read_only) {
        st = ehr_err_set(err, EHR_ENOTFOUND, "the audit journal %s is empty", path);
    } else if (!st && sb.st_size == 0) {
        /* new: the header, durable before any record */
        int n = header(head, sizeof head, new_generation, new_generation - 1, 0);
        if (!write_all(j->fd, head, (size_t)n) || fdatasync(j->fd) != 0)
            st = sys_err(err, "cannot write the header", path);
        else {
            sync_dir(path);
            j->generation = new_generation;
            j->prev_generation = new_generation - 1;
            j->start = j->end = j->synced = n;
        }
    } else if (!st) {
        ssize_t n = pread(j->fd, head, sizeof head - 1, 0);
        char *nl = n > 0 ? memchr(head, '\n', (size_t)n) : NULL;
        char *e = NULL;
        long long g = -1, pg = -1, po = -1;
        if (nl && !strncmp(head, MAGIC, strlen(MAGIC))) {
            *nl = '\0';
            g = strtoll(head + strlen(MAGIC), &e, 10);
            if (*e == ' ')
                pg = strtoll(e + 1, &e, 10);
            if (*e == ' ')
                po = strtoll(e + 1, &e, 10);
        }
        if (!nl || g < 0 || pg < 0 || po < 0 || !e || *e)
            st = ehr_err_set(err, EHR_EINVAL,
                             "%s is not an ehr audit journal (no '" MAGIC "N' header); move it "
                             "away",
                             path);
        else {
            j->generation = g;
            j->prev_generation = pg;
            j->prev_offset = po;
            j->start = nl - head + 1;
            j->end = j->synced = sb.st_size;
        }
    }
    if (st) {
        if (j->fd >= 0)
            close(j->fd);
        free(j->path);
        free(j);
        return st;
    }
    pthread_mutex_init(&j->lock, NULL);
    *out = j;
    return EHR_OK;
}

void ehr_journal_free(ehr_journal **jp)
{
    if (!jp || !*jp)
        return;
    ehr_journal *j = *jp;
    close(j->fd); /* releases the lock */
    pthread_mutex_destroy(&j->lock);
    free(j->path);
    free(j);
    *jp = NULL;
}

int64_t ehr_journal_generation(const ehr_journal *j)
{
    return j->generation;
}

void ehr_journal_prev(const ehr_journal *j, int64_t *prev_generation, int64_t *prev_offset)
{
    *prev_generation = j->prev_generation;
    *prev_offset = j->prev_offset;
}

int64_t ehr_journal_start(const ehr_journal *j)
{
    return j->start;
}

int64_t ehr_journal_end(ehr_journal *j)
{
    pthread_mutex_lock(&j->lock);
    int64_t e = j->end;
    pthread_mutex_unlock(&j->lock);
    return e;
}

ehr_status ehr_journal_append(ehr_journal *j, int64_t time, const char *event, size_t len,
                              ehr_err *err)
{
    if (j->read_only)
        return ehr_err_set(err, EHR_EINTERNAL, "the audit journal was opened to read only");
    if (len > EHR_JOURNAL_MAX_EVENT)
        return ehr_err_set(err, EHR_ELIMIT, "an audit event of %zu bytes is over the limit (%d)",
                           len, EHR_JOURNAL_MAX_EVENT);
    if (memchr(event, '\n', len))
        return ehr_err_set(err, EHR_ELIMIT, "an audit event may not hold a newline");
    char stack[1024], head[48];
    int hn = snprintf(head, sizeof head, "%zu %" PRId64 " ", len, time);
    size_t total = 9 + (size_t)hn + len + 1;
    char *buf = total <= sizeof stack ? stack : malloc(total);
    if (!buf)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    uLong crc = crc32(0L, (const Bytef *)head, (uInt)hn);
    crc = crc32(crc, (const Bytef *)event, (uInt)len);
    snprintf(buf, 10, "%08lx", (unsigned long)crc & 0xffffffffUL);
    buf[8] = ' ';
    memcpy(buf + 9, head, (size_t)hn);
    memcpy(buf + 9 + hn, event, len);
    buf[total - 1] = '\n';
    ehr_status st = EHR_OK;
    pthread_mutex_lock(&j->lock);
    if (write_all(j->fd, buf, total)) {
        j->end += (int64_t)total;
    } else {
        st = sys_err(err, "cannot append", j->path);
        /* leave no partial record behind */
        if (ftruncate(j->fd, j->end) != 0)
            ehr_log(EHR_LOG_ERROR, "audit journal: cutting a failed append failed: %s",
                    strerror(errno));
    }
    pthread_mutex_unlock(&j->lock);
    if (buf != stack)
        free(buf);
    return st;
}

ehr_status ehr_journal_sync(ehr_journal *j, ehr_err *err)
{
    int64_t end = ehr_journal_end(j);
    if (end == j->synced || j->read_only)
        return EHR_OK;
    if (fdatasync(j->fd) != 0)
        return sys_err(err, "cannot sync", j->path);
    j->synced = end;
    return EHR_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parse a non-negative decimal ending in ' '; NULL when malformed. */
static const char *decimal(const char *p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = p;
    while (p < end && *p >= '0' && *p <= '9' && p - s < 19)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == s || p >= end || *p != ' ')
        return NULL;
    *out = v;
    return p + 1;
}

/* One line without its newline: good when every field agrees. */
static bool parse_record(const char *line, size_t llen, int64_t *time, const char **event,
                         size_t *len)
{
    if (llen < 9 || line[8] != ' ')
        return false;
    uint32_t want = 0;
    for (int i = 0; i < 8; i++) {
        int v = hexval(line[i]);
        if (v < 0)
            return false;
        want = want << 4 | (uint32_t)v;
    }
    const char *end = line + llen, *p = line + 9;
    uint64_t n, t;
    if (!(p = decimal(p, end, &n)) || !(p = decimal(p, end, &t)) || (size_t)(end - p) != n ||
        t > INT64_MAX)
        return false;
    uLong crc = crc32(0L, (const Bytef *)(line + 9), (uInt)(llen - 9));
    if ((uint32_t)(crc & 0xffffffffUL) != want)
        return false;
    *time = (int64_t)t;
    *event = p;
    *len = (size_t)n;
    return true;
}

ehr_status ehr_journal_read(ehr_journal *j, int64_t from, int64_t to, size_t max_records,
                            ehr_journal_cb cb, void *ctx, ehr_journal_scan *scan, ehr_err *err)
{
    memset(scan, 0, sizeof *scan);
    scan->end = from;
    if (!to)
        to = ehr_journal_end(j);
    if (to > j->end) /* never past what this process knows of */
        to = j->end;
    if (from < j->start || from >= to)
        return EHR_OK;
    long page = sysconf(_SC_PAGESIZE);
    int64_t base_off = from - from % (page > 0 ? page : 4096);
    size_t maplen = (size_t)(to - base_off);
    char *base = mmap(NULL, maplen, PROT_READ, MAP_SHARED, j->fd, base_off);
    if (base == MAP_FAILED)
        return sys_err(err, "cannot map", j->path);
    ehr_status st = EHR_OK;
    int64_t p = from, bad = -1;
    while (p < to && (!max_records || scan->n_records < max_records)) {
        const char *line = base + (p - base_off);
        const char *nl = memchr(line, '\n', (size_t)(to - p));
        if (!nl) {
            if (bad < 0)
                bad = p;
            break;
        }
        int64_t next = p + (nl - line) + 1;
        int64_t t;
        const char *ev;
        size_t len;
        if (parse_record(line, (size_t)(nl - line), &t, &ev, &len)) {
            if (bad >= 0) {
                if (!scan->n_damaged++)
                    scan->first_damaged = bad;
                bad = -1;
            }
            if ((st = cb(ctx, p, next, t, ev, len)))
                break;
            scan->n_records++;
            scan->end = next;
        } else if (bad < 0) {
            bad = p;
        }
        p = next;
    }
    if (!st && bad >= 0)
        scan->torn = true;
    munmap(base, maplen);
    return st;
}

/* Copy the bytes [from, to) of the journal to fd (at its end). */
static bool copy_range(ehr_journal *j, int fd, int64_t from, int64_t to)
{
    char buf[65536];
    while (from < to) {
        size_t want = (size_t)(to - from) < sizeof buf ? (size_t)(to - from) : sizeof buf;
        ssize_t n = pread(j->fd, buf, want, from);
        if (n <= 0 || !write_all(fd, buf, (size_t)n))
            return false;
        from += n;
    }
    return true;
}

ehr_status ehr_journal_rotate(ehr_journal *j, int64_t generation, int64_t keep_from,
                              int64_t keep_to, ehr_err *err)
{
    if (j->read_only)
        return ehr_err_set(err, EHR_EINTERNAL, "the audit journal was opened to read only");
    bool to_end = !keep_to;
    int64_t snap = to_end ? ehr_journal_end(j) : keep_to;
    if (keep_from < j->start || keep_from > snap || snap > ehr_journal_end(j) ||
        generation <= j->generation)
        return ehr_err_set(err, EHR_EINTERNAL, "audit journal rotation: bad arguments");
    size_t plen = strlen(j->path);
    char *tmp = malloc(plen + 5);
    if (!tmp)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    memcpy(tmp, j->path, plen);
    memcpy(tmp + plen, ".new", 5);
    /* first, without blocking appends: the new file with what is known now,
       on disk (bytes below the end never change; only this thread swaps
       the file) */
    ehr_status st = EHR_OK;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    char head[96];
    int64_t carried = to_end || snap > keep_from ? keep_from : 0;
    int hn = header(head, sizeof head, generation, j->generation, carried);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 || !write_all(fd, head, (size_t)hn))
        st = sys_err(err, "cannot write a new generation", tmp);
    if (!st && !copy_range(j, fd, keep_from, snap))
        st = sys_err(err, "cannot copy the records not yet applied", tmp);
    if (!st && fdatasync(fd) != 0)
        st = sys_err(err, "cannot sync", tmp);
    /* then, appends waiting: what came meanwhile (synced with the next
       ehr_journal_sync, as any append), and the swap */
    pthread_mutex_lock(&j->lock);
    int64_t end = to_end ? j->end : snap;
    if (!st && !copy_range(j, fd, snap, end))
        st = sys_err(err, "cannot copy the records not yet applied", tmp);
    if (!st && rename(tmp, j->path) != 0)
        st = sys_err(err, "cannot rename", tmp);
    if (st) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    } else {
        close(j->fd);
        j->fd = fd;
        j->prev_generation = j->generation;
        j->prev_offset = carried;
        j->generation = generation;
        j->start = hn;
        j->end = hn + (end - keep_from);
        j->synced = hn + (snap - keep_from);
    }
    pthread_mutex_unlock(&j->lock);
    if (!st)
        sync_dir(j->path);
    free(tmp);
    return st;
}
