/*
 * fuzz_sasl: libFuzzer target for the SASL engine, base64 and the credentials blob.
 * The first input byte picks the mechanism and whether the account exists; the rest
 * is split at '\n' into client messages fed to one exchange with fixed credentials
 * (password "pencil", one PBKDF2 iteration so the fuzzer stays fast).
 *
 * Invariant checked: the engine never crashes or leaks, NEED_CREDS always comes with
 * a username, every failure names a condition, an unknown account never succeeds,
 * nothing is accepted after the end, and base64/blob decoding round-trips exactly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "xmpp/jid.h"
#include "xmpp/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sasl: %s\n", what);
		abort();
	}
}

static struct sasl_creds creds;

static void
init_creds(void)
{
	static const unsigned char salt[SASL_SALT_LEN] = "fuzzfuzzfuzzfuzz";
	static int done;

	if (!done && sasl_creds_derive("pencil", salt, 1, &creds) < 0)
		check(0, "derive");
	done = 1;
}

/* Decoding then encoding gives back canonical base64 exactly. */
static void
check_base64(const char *s, size_t n)
{
	struct buf dec = {0}, enc = {0};

	if (base64_decode(&dec, s, n) == 0) {
		base64_encode(&enc, buf_head(&dec), buf_used(&dec));
		if (!(n == 1 && s[0] == '='))
			check(buf_used(&enc) == n && memcmp(buf_head(&enc), s, n) == 0,
			      "base64 round trip");
	}
	buf_free(&dec);
	buf_free(&enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"};
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	struct sasl_creds c;
	struct buf out = {0};
	struct sasl *s;
	int known, rc = SASL_CONTINUE, done = 0;

	if (size == 0)
		return 0;
	init_creds();
	if (sasl_creds_decode(data, size, &c) == 0) {
		unsigned char blob[SASL_CREDS_BLOB];
		size_t n = sasl_creds_encode(&c, blob);
		check(n == size && memcmp(blob, data, n) == 0, "blob round trip");
	}
	check_base64((const char *)data, size);

	s = sasl_new(mechs[data[0] % 3]);
	known = !(data[0] & 0x80);
	check(s != NULL, "sasl_new");
	while (p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		rc = sasl_step(s, p, len, &out);
		while (rc == SASL_NEED_CREDS) {
			check(sasl_username(s) != NULL, "NEED_CREDS without a username");
			check(utf8_valid(sasl_username(s), strlen(sasl_username(s))), "username");
			sasl_set_creds(s, known ? &creds : NULL);
			rc = sasl_step(s, NULL, 0, &out);
		}
		if (done)
			check(rc == SASL_FAIL, "step accepted after the end");
		if (rc == SASL_FAIL)
			check(sasl_condition(s) != NULL, "failure without a condition");
		if (rc == SASL_SUCCESS)
			check(known, "unknown account authenticated");
		if (rc == SASL_FAIL || rc == SASL_SUCCESS)
			done = 1;
		buf_reset(&out);
		if (!nl)
			break;
		p = nl + 1;
	}
	buf_free(&out);
	sasl_free(s);
	return 0;
}
