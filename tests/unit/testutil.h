/* testutil.h - helpers shared by the unit tests. */
#ifndef EHR_TESTUTIL_H
#define EHR_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh temporary folder; the path is written into buf. */
static inline const char *test_tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/ehr-test-XXXXXX");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(1);
    }
    return buf;
}

/* rm -rf the folder (test databases only). */
static inline void test_rmdir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
