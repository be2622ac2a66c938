/*
 * rand: randomness from the kernel (getrandom), for salts, nonces, stream ids and
 * resource names. Never seeded, never predictable.
 */
#include <errno.h>
#include <sys/random.h>

#include "core.h"

void
rand_bytes(void *out, size_t n)
{
	unsigned char *p = out;

	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom failed");
		}
		p += r;
		n -= (size_t)r;
	}
}

void
rand_id(char *out, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[64];

	for (size_t i = 0; i < n; i++) {
		if (i % sizeof r == 0)
			rand_bytes(r, sizeof r);
		/* 248 = 62 * 4: reject the top bytes so every character is equally likely. */
		while (r[i % sizeof r] >= 248)
			rand_bytes(&r[i % sizeof r], 1);
		out[i] = alphabet[r[i % sizeof r] % 62];
	}
	out[n] = '\0';
}
