/* ptb: the caption tokenisation of the COCO toolkit on the cases its
 * description names (CLIPCAP_FACTS "Evaluation": lower-case, PTB splitting
 * of punctuation and contractions, the punctuation list dropped) and the
 * Penn Treebank conventions the Stanford tokenizer documents (clitics
 * "n't 's 're 've 'm 'll 'd", "can't" -> "ca n't", hyphenated words and
 * numbers kept whole, brackets -LRB- -RRB- lower-cased by -lowerCase after
 * escaping, / and * escaped as \/ and \*, currency split off, dotted
 * abbreviations kept). Outputs are exact strings. */
#include "check.h"
#include "text/ptb.h"

static void expect(const char *in, const char *want)
{
    sbuf_t got = {0};
    err_t e = {0};
    CHECK_OK(ptb_tokenize(in, strlen(in), &got, &e), &e);
    CHECK_MSG(got.data && !strcmp(got.data, want), "\"%s\": got \"%s\", want \"%s\"", in,
              got.data ? got.data : "(null)", want);
    sb_free(&got);
}

static void test_captions(void)
{
    expect("A man riding a wave on top of a surfboard.", "a man riding a wave on top of a surfboard");
    expect("Two dogs playing in the snow", "two dogs playing in the snow");
    expect("  A   cat\tsitting on a\nlaptop.  ", "a cat sitting on a laptop");
    expect("", "");
    expect(" . ! ", "");
    /* control characters (NUL included) separate and vanish */
    sbuf_t got = {0};
    err_t e = {0};
    CHECK_OK(ptb_tokenize("a\0b\x01(c", 6, &got, &e), &e);
    CHECK(got.data && !strcmp(got.data, "a b -lrb- c"));
    /* appended after what the buffer holds, as cocoeval keeps every caption's */
    sb_append(&got, "", 1);
    size_t at = got.len;
    CHECK_OK(ptb_tokenize(" Don't. ", 8, &got, &e), &e);
    CHECK(got.len == at + 6 && !strcmp(got.data + at, "do n't"));
    sb_free(&got);
}

static void test_contractions(void)
{
    expect("A man's dog, running.", "a man 's dog running");
    expect("Don't touch it!", "do n't touch it");
    expect("I can't see", "i ca n't see");
    expect("We're here and they've gone, I'm sure you'll see he'd go",
           "we 're here and they 've gone i 'm sure you 'll see he 'd go");
    expect("THE DOG'S BALL", "the dog 's ball");
    expect("the dogs' toys", "the dogs toys");
    expect("it is 5 o'clock", "it is 5 o'clock");
    expect("I'M HERE", "i 'm here");
}

static void test_punctuation(void)
{
    expect("a red, white and blue bus; parked: here?", "a red white and blue bus parked here");
    expect("wait... what?!", "wait what");
    expect("a cat - or a dog -- sleeping", "a cat or a dog sleeping");
    expect("\"Stop\" sign", "stop sign");
    expect("a `quoted' word", "a quoted word");
    expect("a dog (left) and a cat", "a dog -lrb- left -rrb- and a cat");
    expect("a well-known 3.5 inch pizza for 1,000 people", "a well-known 3.5 inch pizza for 1,000 people");
    expect("black/white photo", "black\\/white photo");
    expect("The U.S. flag and Mr. Smith.", "the u.s. flag and mr. smith");
    expect("holding a.", "holding a");
    expect("50% off at AT&T", "50 % off at at&t");
    expect("a $5 hat, e.g. this one", "a $ 5 hat e.g. this one");
    expect("3 * 4 blocks", "3 \\* 4 blocks");
}

int main(void)
{
    CHECK_RUN(test_captions);
    CHECK_RUN(test_contractions);
    CHECK_RUN(test_punctuation);
    return check_summary();
}
