/* Gallery thumbnails: encoded image bytes (JPEG/PNG/WebP) → our decoder →
 * Pillow-exact bicubic resize to fit max_side → RGB → lossy WebP (libwebp,
 * quality 80) → a data: URI, so the report embeds its images and needs no
 * other file. */
#ifndef CLIPCAP_REPORT_THUMB_H
#define CLIPCAP_REPORT_THUMB_H

#include <stddef.h>
#include <stdint.h>
#include "core/log.h"
#include "data/sbuf.h"

/* Appends "data:image/webp;base64,..." to uri; *w, *h get the thumbnail's
 * size. Errors (undecodable image, encoder failure) leave uri unchanged
 * and do not name a file: the caller wraps them with the record. */
int thumb_webp_uri(const uint8_t *data, size_t len, int max_side, sbuf_t *uri, int *w, int *h, err_t *e);

/* RFC 4648 base64 of data[0..n), appended. */
void thumb_base64(sbuf_t *sb, const uint8_t *data, size_t n);

#endif
