// The live status page as a browser shows it: the real trainer and server
// run a short stream with --metrics_listen, then headless Chromium (Debian's
// chromium) loads each daemon's /status, lets its script fetch
// /status.json and redraw, and dumps the DOM; the figures in it must be
// GetStatus's, read once the stream ended and the figures stopped moving.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/monitored_daemons.h"

namespace contrail {
namespace test {
namespace {

constexpr char kChromium[] = "/usr/bin/chromium";

// The text of the element with id `id` in `dom` (the page keeps each
// figure alone in its element); "<missing>" when there is none.
std::string ElementText(const std::string& dom, const std::string& id) {
  const size_t at = dom.find(absl::StrCat("id=\"", id, "\""));
  if (at == std::string::npos) return "<missing>";
  const size_t begin = dom.find('>', at);
  const size_t end = dom.find('<', begin);
  if (begin == std::string::npos || end == std::string::npos) return "<missing>";
  return dom.substr(begin + 1, end - begin - 1);
}

class StatusPageTest : public MonitoredDaemonsTest {
 protected:
  // The DOM of http://127.0.0.1:`port`/status after 4 s of (virtual) time
  // in headless Chromium: the page has fetched /status.json and redrawn.
  std::string LoadPage(int port) {
    const std::string profile = absl::StrCat(TestTmpDir(), "/chromium-", ++pages_);
    ChildProcess* chromium = StartProcess(
        "chromium", kChromium,
        {"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", absl::StrCat("--user-data-dir=", profile),
         "--virtual-time-budget=4000", "--dump-dom",
         absl::StrCat("http://127.0.0.1:", port, "/status")});
    EXPECT_NE(chromium, nullptr);
    if (chromium == nullptr) return "";
    const std::optional<int> exit = chromium->WaitForExitCode(absl::Seconds(60));
    EXPECT_EQ(exit, 0) << chromium->Stderr();
    return chromium->Stdout();
  }

  int pages_ = 0;
};

TEST_F(StatusPageTest, PagesShowWhatGetStatusSays) {
  MonitoredDaemon trainer, server;
  StatusResponse trainer_status, server_status;
  ASSERT_NO_FATAL_FAILURE(
      StartAndFinishStream(&trainer, &server, &trainer_status, &server_status));

  const std::string trainer_page = LoadPage(trainer.metrics_port);
  EXPECT_EQ(ElementText(trainer_page, "role"), "trainer");
  EXPECT_EQ(ElementText(trainer_page, "phase"), "DONE");
  EXPECT_EQ(ElementText(trainer_page, "model"), "lenet5");
  EXPECT_EQ(ElementText(trainer_page, "version"), absl::StrCat(trainer_status.version()));
  EXPECT_EQ(ElementText(trainer_page, "checksum"),
            absl::StrFormat("%016x", trainer_status.checksum()));
  EXPECT_EQ(ElementText(trainer_page, "prequential_accuracy"),
            absl::StrFormat("%.2f", 100 * trainer_status.prequential_accuracy()));
  EXPECT_EQ(ElementText(trainer_page, "served_prequential_accuracy"),
            absl::StrFormat("%.2f", 100 * trainer_status.served_prequential_accuracy()));
  EXPECT_EQ(ElementText(trainer_page, "connected_servers"),
            absl::StrCat(trainer_status.subscribers()));
  EXPECT_EQ(trainer_status.subscribers(), 1u);
  EXPECT_EQ(ElementText(trainer_page, "examples_seen"),
            absl::StrCat(trainer_status.examples_seen()));
  EXPECT_EQ(ElementText(trainer_page, "examples_ingested"),
            absl::StrCat(trainer_status.examples_accepted()));
  EXPECT_EQ(ElementText(trainer_page, "updates"),
            absl::StrCat(trainer_status.updates_published()));
  ASSERT_GT(trainer_status.updates_published(), 0u);
  EXPECT_EQ(ElementText(trainer_page, "bytes_per_update"),
            absl::StrCat(std::llround(static_cast<double>(trainer_status.payload_bytes_published()) /
                                      trainer_status.updates_published())));
  // The connected server is listed, with nothing left to send it.
  EXPECT_THAT(trainer_page, ::testing::HasSubstr(absl::StrCat(
                                "<td>server-a</td><td>", trainer_status.version(), "</td><td>0</td>")));
  double freshness_ms = 0;
  EXPECT_TRUE(absl::SimpleAtod(ElementText(trainer_page, "freshness_ms"), &freshness_ms))
      << ElementText(trainer_page, "freshness_ms");
  // The accuracy chart was drawn: two polylines.
  const size_t first_line = trainer_page.find("<polyline");
  ASSERT_NE(first_line, std::string::npos);
  EXPECT_NE(trainer_page.find("<polyline", first_line + 1), std::string::npos);

  const std::string server_page = LoadPage(server.metrics_port);
  EXPECT_EQ(ElementText(server_page, "role"), "server");
  EXPECT_EQ(ElementText(server_page, "version"), absl::StrCat(server_status.version()));
  EXPECT_EQ(ElementText(server_page, "checksum"),
            absl::StrFormat("%016x", server_status.checksum()));
  EXPECT_EQ(ElementText(server_page, "connected"), "yes");
  EXPECT_EQ(ElementText(server_page, "updates"), absl::StrCat(server_status.updates_applied()));
  EXPECT_EQ(ElementText(server_page, "resyncs"), absl::StrCat(server_status.resyncs()));
  EXPECT_EQ(ElementText(server_page, "bytes_per_update"),
            absl::StrCat(std::llround(static_cast<double>(server_status.bytes_received()) /
                                      server_status.updates_applied())));
  // Freshness of the last update applied: a number of milliseconds.
  EXPECT_TRUE(absl::SimpleAtod(ElementText(server_page, "freshness_ms"), &freshness_ms))
      << ElementText(server_page, "freshness_ms");
  EXPECT_GE(freshness_ms, 0);
  EXPECT_LT(freshness_ms, 60000);
}

}  // namespace
}  // namespace test
}  // namespace contrail
