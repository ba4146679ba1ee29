// A stand-in for spice-1.0.jar, run as pycocoevalcap runs it
// (IN -out OUT -subset -silent, from the jar's directory), to test
// clipcap's plumbing (not SPICE itself). It reads the compact
// [{"image_id":N,"test":"...","refs":["...",...]}] clipcap writes and
// writes, in reverse order, per image scores.All.f = words(test) / 10
// (NaN, as Java spells it, when test is empty) and scores.Object.f =
// refs / 10. FAKE_JAVA_FAIL=crash exits 1.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import java.util.regex.*;

public class FakeSpice {
    public static void main(String[] args) throws IOException {
        if (args.length != 5 || !args[1].equals("-out") || !args[3].equals("-subset") || !args[4].equals("-silent")
            || !new File("spice-1.0.jar").isFile()) {
            System.err.println("fake spice: arguments " + Arrays.toString(args) + " or directory not the toolkit's");
            System.exit(2);
        }
        if ("crash".equals(System.getenv("FAKE_JAVA_FAIL"))) {
            System.err.println("fake spice: told to crash");
            System.exit(1);
        }
        String in = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
        Matcher m = Pattern.compile("\\{\"image_id\":(\\d+),\"test\":\"((?:[^\"\\\\]|\\\\.)*)\",\"refs\":\\[([^\\]]*)\\]\\}").matcher(in);
        List<String> items = new ArrayList<>();
        while (m.find()) {
            String test = m.group(2).trim();
            int words = test.isEmpty() ? 0 : test.split(" +").length;
            int refs = m.group(3).isEmpty() ? 0 : m.group(3).split("\",\"").length;
            String f = words == 0 ? "NaN" : Double.toString(words / 10.0);
            items.add("{\"image_id\":" + m.group(1) + ",\"scores\":{\"All\":{\"pr\":0.5,\"re\":0.5,\"f\":" + f
                      + ",\"fn\":1.0,\"numImages\":1.0,\"fp\":1.0,\"tp\":1.0},\"Object\":{\"f\":" + (refs / 10.0) + "}}}");
        }
        Collections.reverse(items);
        Files.write(Paths.get(args[2]), ("[" + String.join(",", items) + "]").getBytes(StandardCharsets.UTF_8));
    }
}
