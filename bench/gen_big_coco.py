#!/usr/bin/python3
"""Writes a COCO caption annotation file shaped like captions_train2014.json
(images with ids and file names, annotations with ids, image ids and
captions) with IMAGES images and 5 captions each (default 120000 images =
600000 captions, ~60 MB), for bench/bench_shard.sh. Captions are drawn from
templates and a few hundred words with a fixed seed, lengths 6..30 words
like COCO's; the output is the same on every run.

    /usr/bin/python3 bench/gen_big_coco.py OUT.json [IMAGES]
"""
import json
import random
import sys

out = sys.argv[1]
n_images = int(sys.argv[2]) if len(sys.argv) > 2 else 120000
rng = random.Random(2014)
adj = ("red blue green yellow white black small large young old wooden brown grey dark bright empty busy "
       "crowded tall short little big shiny colorful striped").split()
nouns = ("man woman child dog cat bus train plane car bicycle table pizza sandwich kitchen street horse "
         "giraffe elephant zebra boat bench clock laptop phone umbrella skateboard surfboard kite bowl cake "
         "bird sheep cow bear toilet sink window door tree field beach road building room couch bed").split()
verbs = ("sitting standing walking riding holding eating looking playing parked flying lying waiting "
         "running jumping carrying driving").split()
preps = "on in near next to under behind beside in front of with at".split()
places = ("a table", "the street", "a field", "the beach", "a kitchen counter", "the sky", "a plate",
          "a city street", "the water", "a grassy field", "the snow", "a wooden bench", "the road")


def phrase():
    return f"{rng.choice(['a', 'the', 'two', 'some', 'an old'])} {rng.choice(adj)} {rng.choice(nouns)}"


def caption():
    parts = [phrase().capitalize(), rng.choice(verbs), " ".join(rng.sample(preps, 1)), rng.choice(places)]
    while rng.random() < 0.35:
        parts += ["and", phrase(), rng.choice(verbs)]
    if rng.random() < 0.2:
        parts.append("while it's " + rng.choice(["raining", "sunny", "dark", "snowing"]))
    c = " ".join(parts)
    return c + ("." if rng.random() < 0.8 else "")


images, anns = [], []
ann_id = 1
for i in range(n_images):
    img_id = 9 + i * 7  # sparse ids like COCO's
    images.append({"license": 1, "file_name": f"COCO_train2014_{img_id:012d}.jpg", "height": 480, "width": 640,
                   "id": img_id})
    for _ in range(5):
        anns.append({"image_id": img_id, "id": ann_id, "caption": caption()})
        ann_id += 1
rng.shuffle(anns)  # COCO's annotations are not grouped by image
with open(out, "w") as f:
    json.dump({"info": {"description": "synthetic COCO-shaped captions for bench_shard"}, "images": images,
               "licenses": [], "annotations": anns}, f)
print(f"{out}: {n_images} images, {len(anns)} captions")
