/*
 * replay.c - a main() for a libFuzzer harness without libFuzzer: feeds it
 * every file named on the command line (or in the directories named), so
 * make check replays the corpus with the build's own compiler and sanitizers.
 * Prints TAP: one line per file.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int n;

static void one(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long len;

	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0 || (buf = malloc((size_t)len + 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len) {
		printf("not ok %d - %s: cannot read\n", ++n, path);
		exit(1);
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len); /* aborts on a finding */
	free(buf);
	printf("ok %d - %s\n", ++n, path);
}

int main(int argc, char **argv)
{
#ifdef FUZZ_CORPUS
	static char *corpus[] = {NULL, FUZZ_CORPUS, NULL};
	if (argc < 2) {
		corpus[0] = argv[0];
		argv = corpus;
		argc = 2;
	}
#endif
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		DIR *d;
		struct dirent *e;
		if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode) && (d = opendir(argv[i]))) {
			while ((e = readdir(d)))
				if (e->d_name[0] != '.') {
					char p[4096];
					snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
					one(p);
				}
			closedir(d);
		} else {
			one(argv[i]);
		}
	}
	printf("1..%d\n", n);
	return 0;
}
