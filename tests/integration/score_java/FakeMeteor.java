// A stand-in for meteor-1.5.jar that speaks its -stdio protocol as
// pycocoevalcap uses it, to test clipcap's plumbing (not METEOR itself).
// It insists on the toolkit's arguments, working directory (the jar's)
// and LC_ALL=C. "SCORE ||| ref ... ||| hyp" answers the statistics line
// "REFS HYPWORDS REFWORDS"; "EVAL ||| stats ||| ..." answers, per image,
// HYPWORDS / (REFWORDS + REFS) and then the sum of those plus 1000 (so
// the corpus score cannot be mistaken for a mean computed by the caller).
// FAKE_JAVA_FAIL=crash dies after the first SCORE line; =garbage answers
// EVAL with text.
import java.io.*;
import java.util.*;

public class FakeMeteor {
    static int words(String s) {
        String t = s.trim();
        return t.isEmpty() ? 0 : t.split(" +").length;
    }

    public static void main(String[] args) throws IOException {
        String want = "[-, -, -stdio, -l, en, -norm]";
        if (!Arrays.toString(args).equals(want)) {
            System.err.println("fake meteor: arguments " + Arrays.toString(args) + ", want " + want);
            System.exit(2);
        }
        if (!new File("meteor-1.5.jar").isFile() || !"C".equals(System.getenv("LC_ALL"))) {
            System.err.println("fake meteor: not run from the jar's directory with LC_ALL=C");
            System.exit(2);
        }
        String fail = System.getenv("FAKE_JAVA_FAIL");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split(" \\|\\|\\| ", -1);
            if (f[0].equals("SCORE")) {
                if ("crash".equals(fail)) {
                    System.err.println("Exception in thread \"main\" fake meteor: told to crash");
                    System.exit(3);
                }
                int refWords = 0;
                for (int i = 1; i < f.length - 1; i++) refWords += words(f[i]);
                out.println((f.length - 2) + " " + words(f[f.length - 1]) + " " + refWords);
            } else if (f[0].equals("EVAL")) {
                double sum = 0;
                for (int i = 1; i < f.length; i++) {
                    String[] s = f[i].trim().split(" ");
                    double v = Double.parseDouble(s[1]) / (Double.parseDouble(s[2]) + Double.parseDouble(s[0]));
                    sum += v;
                    out.println("garbage".equals(fail) ? "no score" : Double.toString(v));
                }
                out.println(Double.toString(sum + 1000));
            } else {
                System.err.println("fake meteor: unknown line: " + line);
                System.exit(4);
            }
        }
    }
}
