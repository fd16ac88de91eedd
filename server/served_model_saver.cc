#include "server/served_model_saver.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace contrail {

absl::StatusOr<std::unique_ptr<ServedModelSaver>> ServedModelSaver::Create(
    const Options& options, const LiveModel* live, const ServedModelStore* store) {
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the save interval (--save_every_s) must be > 0, got ", absl::FormatDuration(options.interval)));
  }
  if (options.clock == nullptr) return absl::InvalidArgumentError("clock must not be null");
  if (live == nullptr) return absl::InvalidArgumentError("live model must not be null");
  if (store == nullptr) return absl::InvalidArgumentError("store must not be null");
  return std::unique_ptr<ServedModelSaver>(new ServedModelSaver(options, live, store));
}

ServedModelSaver::~ServedModelSaver() { Stop(); }

void ServedModelSaver::MarkSaved(uint64_t run, uint64_t version) {
  saved_run_ = run;
  saved_version_ = version;
}

void ServedModelSaver::Start() { thread_ = std::thread([this] { Run(); }); }

void ServedModelSaver::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
  const absl::Status saved = SaveIfChanged();
  if (!saved.ok()) spdlog::error("state: the last save failed: {}", saved.ToString());
}

void ServedModelSaver::Run() {
  while (!options_.clock->SleepUntil(options_.clock->Now() + options_.interval, &stop_)) {
    const absl::Status saved = SaveIfChanged();
    if (!saved.ok()) spdlog::warn("state: save failed, retrying: {}", saved.ToString());
  }
}

absl::Status ServedModelSaver::SaveIfChanged() {
  const std::shared_ptr<const LiveModel::Version> current = live_->Current();
  if (current == nullptr) return absl::OkStatus();
  if (current->run == saved_run_ && current->version == saved_version_.load()) {
    return absl::OkStatus();
  }
  const absl::Status saved = store_->Save(*current);
  if (!saved.ok()) return saved;
  saved_run_ = current->run;
  saved_version_ = current->version;
  ++saves_;
  return absl::OkStatus();
}

}  // namespace contrail
