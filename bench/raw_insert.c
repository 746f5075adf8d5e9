/*
 * raw_insert.c - the ingest baseline of bench/bulk.sh: the same JSON rows
 * inserted straight into SQLite, with nothing else (no validation, no
 * index values, no versions, no audit). Reads the NDJSON files of an
 * `ehr export` folder (one file per type) and inserts each line as
 * (type, id, content) into a fresh database in WAL mode with
 * synchronous=FULL, committing every BATCH rows (default 200, about one
 * Synthea Bundle). Prints "BENCH rows=N seconds=S rate=R".
 *
 * usage: raw_insert DB DIR [BATCH]
 */
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "raw_insert: %s: %s\n", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: raw_insert DB DIR [BATCH]\n");
        return 2;
    }
    long batch = argc > 3 ? atol(argv[3]) : 200;
    if (batch < 1)
        batch = 1;
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK)
        return 1;
    if (exec(db, "PRAGMA journal_mode=WAL") || exec(db, "PRAGMA synchronous=FULL") ||
        exec(db, "CREATE TABLE IF NOT EXISTS resource (type TEXT NOT NULL, id TEXT NOT NULL, "
                 "content BLOB NOT NULL, PRIMARY KEY (type, id))"))
        return 1;
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO resource VALUES (?1, ?2, ?3)", -1, &ins,
                           NULL) != SQLITE_OK)
        return 1;
    DIR *d = opendir(argv[2]);
    if (!d) {
        perror(argv[2]);
        return 1;
    }
    double t0 = now();
    long rows = 0, in_tx = 0;
    struct dirent *de;
    char *line = NULL;
    size_t cap = 0;
    exec(db, "BEGIN");
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 8 || strcmp(de->d_name + n - 7, ".ndjson"))
            continue;
        char type[128], path[4096];
        snprintf(type, sizeof type, "%.*s", (int)(n - 7), de->d_name);
        snprintf(path, sizeof path, "%s/%s", argv[2], de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        ssize_t len;
        while ((len = getline(&line, &cap, f)) > 0) {
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            const char *id = strstr(line, "\"id\":\"");
            if (!id)
                continue;
            id += 6;
            int idlen = (int)strcspn(id, "\"");
            sqlite3_bind_text(ins, 1, type, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, id, idlen, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 3, line, (int)len, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) {
                fprintf(stderr, "raw_insert: %s\n", sqlite3_errmsg(db));
                return 1;
            }
            sqlite3_reset(ins);
            rows++;
            if (++in_tx == batch) {
                exec(db, "COMMIT");
                exec(db, "BEGIN");
                in_tx = 0;
            }
        }
        fclose(f);
    }
    exec(db, "COMMIT");
    double secs = now() - t0;
    closedir(d);
    free(line);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("BENCH rows=%ld seconds=%.3f rate=%.0f cpu=%.3f cpu_rate=%.0f\n", rows, secs,
           secs > 0 ? rows / secs : 0, cpu, cpu > 0 ? rows / cpu : 0);
    return 0;
}
