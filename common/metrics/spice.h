/* SPICE 1.0 through its jar, as pycocoevalcap's spice.py runs it: the
 * evaluated set written as [{"image_id", "test", "refs"}] to a temporary
 * in.json, `java -jar -Xmx8G spice-1.0.jar in.json -out out.json -subset
 * -silent`, and out.json read back: per image {"image_id", "scores":
 * {"All": {"pr", "re", "f", ...}, "Object": {...}, ...}}. The corpus score
 * is the mean over images of scores.All.f; like the toolkit's np.mean it
 * is NaN when one image's f is NaN or null (SPICE writes NaN for an image
 * without tuples). image_id in in.json is the item's index; the toolkit's
 * -cache directory is not used (it only saves parsing time). */
#ifndef CLIPCAP_SPICE_H
#define CLIPCAP_SPICE_H

#include <jansson.h>
#include "metrics/metric.h"

/* per_image: NULL, or receives a new JSON array of each item's "scores"
 * object in item order (NaN written by SPICE becomes null). */
int spice_score(const char *jar, const metric_item_t *items, size_t n, double *score, json_t **per_image, err_t *e);

#endif
