#include "common/log_text.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace wtmesh {
namespace {

TEST(LogText, PrintableAsciiIsKeptAndEverythingElseEscaped) {
  EXPECT_EQ(log_text("app.localhost:4433"), "app.localhost:4433");
  // A forged second log line, a terminal escape, NUL, a backslash and UTF-8 bytes.
  EXPECT_EQ(log_text("a\r\nhttp x GET /admin 200"), "a\\x0d\\x0ahttp x GET /admin 200");
  EXPECT_EQ(log_text("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(log_text(std::string("n\0l", 3)), "n\\x00l");
  EXPECT_EQ(log_text("a\\x41"), "a\\\\x41") << "a literal backslash cannot pass for an escape";
  EXPECT_EQ(log_text("caf\xc3\xa9"), "caf\\xc3\\xa9");
  EXPECT_EQ(log_text(""), "");
}

TEST(LogText, LongTextIsCutAndSaysHowLongItWas) {
  EXPECT_EQ(log_text(std::string(10, 'a'), 10), std::string(10, 'a'));
  EXPECT_EQ(log_text(std::string(11, 'a'), 10), std::string(10, 'a') + "...(11 bytes)");
  EXPECT_EQ(log_text(std::string(1 << 20, 'x')).size(), 256u + std::string("...(1048576 bytes)").size());
  // An escape is never cut in half.
  EXPECT_EQ(log_text("abcdefgh\x01", 10), "abcdefgh...(9 bytes)");
}

TEST(LogTarget, CredentialQueryParametersAreRedacted) {
  EXPECT_EQ(log_target("/x"), "/x");
  EXPECT_EQ(log_target("/connect/redis?token=eyJh.b.c"), "/connect/redis?token=REDACTED");
  EXPECT_EQ(log_target("/a?page=2&WTMESH_TOKEN=s3cret&q=x"), "/a?page=2&WTMESH_TOKEN=REDACTED&q=x");
  EXPECT_EQ(log_target("/a?access_token=1&token=2&tokens=3"), "/a?access_token=REDACTED&token=REDACTED&tokens=3");
  EXPECT_EQ(log_target("/a?token"), "/a?token") << "no value, nothing to hide";
  EXPECT_EQ(log_target("/a?"), "/a?");
  EXPECT_EQ(log_target("/a?x=\r\n"), "/a?x=\\x0d\\x0a");
}

TEST(LogBudget, ABurstThenOneLinePerIntervalAndTheSuppressedAreCounted) {
  using namespace std::chrono_literals;
  LogBudget b(3, 1000ms);
  SteadyTime t{};
  t += 5s;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.allow(t)) << i;
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(b.allow(t + 10ms));
  EXPECT_EQ(b.suppressed_note(), " (1000 similar lines suppressed)");
  EXPECT_EQ(b.suppressed_note(), "");
  EXPECT_FALSE(b.allow(t + 999ms));
  EXPECT_TRUE(b.allow(t + 1000ms));
  EXPECT_FALSE(b.allow(t + 1500ms));
  EXPECT_EQ(b.take_suppressed(), 2u);
  // Quiet for long: the bucket is full again, never fuller.
  t += 1h;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.allow(t)) << i;
  EXPECT_FALSE(b.allow(t));
}

}  // namespace
}  // namespace wtmesh
