// A Markdown table with padded columns, readable as plain text too: how
// the benchmarks (sparse_bench, serve_bench) print their figures.
// Not thread-safe.
#ifndef CONTRAIL_TESTS_MARKDOWN_TABLE_H_
#define CONTRAIL_TESTS_MARKDOWN_TABLE_H_

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace contrail {

class Table {
 public:
  // A leading '<' in a header left-aligns the column; others align right.
  explicit Table(std::vector<std::string> headers) {
    for (std::string& h : headers) {
      const bool left = !h.empty() && h[0] == '<';
      left_.push_back(left);
      headers_.push_back(left ? h.substr(1) : h);
    }
  }

  void AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

  void Print() const {
    std::vector<size_t> width(headers_.size(), 3);
    auto widen = [&](const std::vector<std::string>& cells) {
      for (size_t c = 0; c < cells.size() && c < width.size(); ++c) {
        width[c] = std::max(width[c], cells[c].size());
      }
    };
    widen(headers_);
    for (const auto& row : rows_) widen(row);
    auto print_row = [&](const std::vector<std::string>& cells) {
      std::string line = "|";
      for (size_t c = 0; c < width.size(); ++c) {
        const std::string cell = c < cells.size() ? cells[c] : "";
        const std::string pad(width[c] - cell.size(), ' ');
        line += " " + (left_[c] ? cell + pad : pad + cell) + " |";
      }
      std::printf("%s\n", line.c_str());
    };
    print_row(headers_);
    std::string rule = "|";
    for (size_t c = 0; c < width.size(); ++c) {
      rule += left_[c] ? ":" + std::string(width[c] + 1, '-') + "|"
                       : std::string(width[c] + 1, '-') + ":|";
    }
    std::printf("%s\n", rule.c_str());
    for (const auto& row : rows_) print_row(row);
    std::printf("\n");
    std::fflush(stdout);
  }

 private:
  std::vector<std::string> headers_;
  std::vector<bool> left_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace contrail

#endif  // CONTRAIL_TESTS_MARKDOWN_TABLE_H_
