/*
 * check: the few lines every C unit test shares. CHECK(cond, fmt, ...) counts a passed or
 * failed check and prints one line per failure; check_summary() prints the line
 * scripts/test.sh reads ("test_x: N passed, M failed") and returns the exit status.
 */
#ifndef BATON_TEST_CHECK_H
#define BATON_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                                \
			printf(__VA_ARGS__);                                                       \
			putchar('\n');                                                             \
		}                                                                                  \
	} while (0)

static inline int
check_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, passed, failed);
	return failed ? 1 : 0;
}

#endif
