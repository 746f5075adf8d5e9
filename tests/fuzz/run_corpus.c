/*
 * run_corpus.c - replays a fuzz corpus through a libFuzzer target without
 * libFuzzer: `run_corpus DIR...` feeds every file to LLVMFuzzerTestOneInput.
 * Under the sanitizer build this makes every committed input (crashes
 * found earlier among them) a regression test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    size_t files = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "%s: cannot open\n", argv[i]);
            return 1;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
            FILE *f = fopen(path, "rb");
            if (!f)
                continue;
            uint8_t *buf = malloc(1 << 20);
            size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
            fclose(f);
            if (buf)
                LLVMFuzzerTestOneInput(buf, n);
            free(buf);
            files++;
        }
        closedir(d);
    }
    printf("%zu inputs replayed\n", files);
    return 0;
}
