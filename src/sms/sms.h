/*
 * sms: phone users in batond (PROTOCOL.md 3). The service at sms.<domain> turns messages to
 * +E.164@sms.<domain> into MT messages for a buffer server, and MO messages from phones into
 * ordinary XMPP messages; the buffer servers (baton-smsbuf) connect to sms.link.
 *
 * Invariant: all SMS state (links, rings, the queue cursor) lives on worker 0 and is touched
 * by no other thread; other workers reach it with worker_call().
 */
#ifndef BATON_SMS_H
#define BATON_SMS_H

#include "../core/core.h"

/* Registers the service at sms.<domain> and, if sms.link is set, the link listener. */
void sms_register(const struct config *cfg);
/* Appends the SMS metrics (Prometheus text format); safe from any thread. */
void sms_metrics(struct buf *out);

#endif
