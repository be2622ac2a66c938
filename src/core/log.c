/*
 * log: one line per event on stderr, with a UTC timestamp, the level and the
 * thread's loop id. A whole line is formatted first and written with one write(2)
 * so lines of different threads never interleave.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

int log_level_current = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int
log_set_level(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			log_level_current = (int)i;
			return 0;
		}
	}
	return -1;
}

void
log_write(int level, const char *fmt, ...)
{
	char line[2048], ts[32];
	struct loop *loop = loop_current();
	va_list ap;
	int n;

	time_format(wall_ms(), ts, sizeof ts);
	n = snprintf(line, sizeof line, "%s %-5s [%c%d] ", ts, level_names[level], loop ? 'w' : 'm',
		     loop ? loop_id(loop) : 0);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
