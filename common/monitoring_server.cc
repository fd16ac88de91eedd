#include "common/monitoring_server.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_metrics.h"
#include "google/protobuf/util/json_util.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace contrail {
namespace {

// The status page: plain HTML, CSS and JavaScript, nothing fetched but
// /status.json. Each figure sits alone in an element with a stable id (its
// text is the bare number, units outside it), so that tests and scrapers
// of the DOM read the same values GetStatus returns.
constexpr char kStatusPage[] = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>contrail status</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#f6f7fb}
h1{font-size:22px;margin:0 0 4px}
.sub{color:#667;margin-bottom:18px;font-size:14px}
.grid{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.label{font-size:12px;color:#667;text-transform:uppercase;letter-spacing:.04em}
.value{font-size:24px;font-weight:600;margin-top:4px;font-variant-numeric:tabular-nums}
.unit{font-size:14px;color:#667;font-weight:400}
#chart{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
table{border-collapse:collapse;background:#fff;margin-top:18px;min-width:50%;box-shadow:0 1px 3px rgba(0,0,0,.08)}
td,th{padding:6px 12px;text-align:left;font-size:14px;border-bottom:1px solid #eee}
body.trainer .server-only,body.server .trainer-only{display:none}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.sw{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:5px}
</style></head>
<body>
<h1>contrail <span id="role">-</span></h1>
<div class="sub">phase <b id="phase">-</b> &middot; model <b id="model">-</b> &middot;
checksum <code id="checksum">-</code> &middot; updated <span id="updated">never</span></div>
<div class="grid">
 <div class="card"><div class="label">version</div><div class="value" id="version">-</div></div>
 <div class="card trainer-only"><div class="label">trainer prequential accuracy</div>
  <div class="value"><span id="prequential_accuracy">-</span><span class="unit"> %</span></div></div>
 <div class="card trainer-only"><div class="label">served prequential accuracy</div>
  <div class="value"><span id="served_prequential_accuracy">-</span><span class="unit"> %</span></div></div>
 <div class="card"><div class="label" id="freshness_label">freshness</div>
  <div class="value"><span id="freshness_ms">-</span><span class="unit"> ms</span></div></div>
 <div class="card"><div class="label">bytes per update</div><div class="value" id="bytes_per_update">-</div></div>
 <div class="card"><div class="label" id="updates_label">updates</div><div class="value" id="updates">-</div></div>
 <div class="card trainer-only"><div class="label">connected servers</div><div class="value" id="connected_servers">-</div></div>
 <div class="card trainer-only"><div class="label">examples seen</div><div class="value" id="examples_seen">-</div></div>
 <div class="card trainer-only"><div class="label">examples ingested / rejected</div>
  <div class="value"><span id="examples_ingested">-</span> / <span id="examples_rejected">-</span></div></div>
 <div class="card server-only"><div class="label">connected to trainer</div><div class="value" id="connected">-</div></div>
 <div class="card server-only"><div class="label">predictions</div><div class="value" id="predictions">-</div></div>
 <div class="card server-only"><div class="label">resyncs</div><div class="value" id="resyncs">-</div></div>
</div>
<div class="legend"><span><i class="sw" style="background:#3060d0"></i><span id="series_a">trainer accuracy</span></span>
<span class="trainer-only"><i class="sw" style="background:#e07020"></i>served accuracy</span></div>
<svg id="chart" width="100%" viewBox="0 0 1000 320"></svg>
<table class="trainer-only"><thead><tr><th>server</th><th>version sent</th><th>versions behind</th><th>publish &rarr; sent (ms)</th></tr></thead>
<tbody id="servers"></tbody></table>
<script>
"use strict";
function num(x){return x===undefined||x===null||x===""?0:Number(x);}
function set(id,text){var e=document.getElementById(id);if(e)e.textContent=text;}
function line(points,color,width){
  if(points.length===0)return "";
  return '<polyline fill="none" stroke="'+color+'" stroke-width="'+width+'" stroke-linejoin="round" points="'+
    points.map(function(p){return p[0].toFixed(1)+","+p[1].toFixed(1);}).join(" ")+'"/>';
}
function chart(history,trainer){
  var W=1000,H=320,L=56,R=12,T=12,B=34,svg="";
  // The trainer's accuracies start with its stream: leave out the samples before.
  var first=history.findIndex(function(h){return trainer?(h[2]>0||h[3]>0):h[4]>=0;});
  var rows=first<0?[]:history.slice(first).filter(function(h){return trainer||h[4]>=0;});
  var ys=[];rows.forEach(function(h){if(trainer){ys.push(h[2],h[3]);}else{ys.push(h[4]*1000);}});
  var lo=trainer?1:0,hi=trainer?0:1;ys.forEach(function(y){lo=Math.min(lo,y);hi=Math.max(hi,y);});
  if(trainer){lo=Math.max(0,Math.floor(lo*20)/20);hi=Math.min(1,Math.ceil(hi*20)/20);if(hi<=lo)hi=lo+0.05;}
  else{lo=0;hi=hi>0?hi*1.1:1;}
  var t0=rows.length?rows[0][0]:0,t1=rows.length?rows[rows.length-1][0]:1;if(t1<=t0)t1=t0+1000;
  function X(t){return L+(W-L-R)*(t-t0)/(t1-t0);}
  function Y(y){return T+(H-T-B)*(1-(y-lo)/(hi-lo));}
  for(var i=0;i<=4;i++){var v=lo+(hi-lo)*i/4,y=Y(v);
    svg+='<line x1="'+L+'" x2="'+(W-R)+'" y1="'+y+'" y2="'+y+'" stroke="#eee"/>';
    svg+='<text x="'+(L-6)+'" y="'+(y+4)+'" font-size="11" text-anchor="end" fill="#667">'+
      (trainer?(v*100).toFixed(1)+"%":v.toFixed(1)+" ms")+'</text>';}
  svg+='<text x="'+L+'" y="'+(H-10)+'" font-size="11" fill="#667">'+
    (rows.length?((t1-t0)/1000).toFixed(0)+" s of history, sampled every second":"no samples yet")+'</text>';
  if(trainer){
    svg+=line(rows.map(function(h){return [X(h[0]),Y(h[2])];}),"#3060d0",5);
    svg+=line(rows.map(function(h){return [X(h[0]),Y(h[3])];}),"#e07020",2);
  }else{
    svg+=line(rows.map(function(h){return [X(h[0]),Y(h[4]*1000)];}),"#3060d0",2);
  }
  document.getElementById("chart").innerHTML=svg;
}
function render(d){
  var s=d.status,x=d.extra||{},trainer=s.role==="trainer";
  document.body.className=trainer?"trainer":"server";
  set("role",s.role);set("phase",s.phase);set("model",(s.spec&&s.spec.architecture)||"-");
  set("checksum",BigInt(s.checksum||0).toString(16).padStart(16,"0"));
  set("version",String(s.version));
  set("updated",new Date().toLocaleTimeString());
  if(trainer){
    set("prequential_accuracy",(100*num(s.prequential_accuracy)).toFixed(2));
    set("served_prequential_accuracy",(100*num(s.served_prequential_accuracy)).toFixed(2));
    set("connected_servers",String(s.subscribers));
    set("examples_seen",String(s.examples_seen));
    set("examples_ingested",String(s.examples_accepted));
    set("examples_rejected",String(s.examples_rejected));
    set("updates_label","updates published");set("updates",String(s.updates_published));
    var n=num(s.updates_published);
    set("bytes_per_update",n>0?Math.round(num(s.payload_bytes_published)/n).toString():"0");
    set("freshness_label","freshness (publish \u2192 sent)");
    set("series_a","trainer accuracy");
    var rows="";(x.servers||[]).forEach(function(v){
      rows+="<tr><td>"+String(v.name).replace(/</g,"&lt;")+"</td><td>"+v.version+"</td><td>"+
        v.versions_behind+"</td><td>"+(v.lag_seconds*1000).toFixed(1)+"</td></tr>";});
    document.getElementById("servers").innerHTML=rows;
  }else{
    set("connected",s.connected?"yes":"no");set("predictions",String(s.predictions));
    set("resyncs",String(s.resyncs));
    set("updates_label","updates applied");set("updates",String(s.updates_applied));
    var m=num(s.updates_applied);
    set("bytes_per_update",m>0?Math.round(num(s.bytes_received)/m).toString():"0");
    set("freshness_label","freshness (publish \u2192 applied)");
    set("series_a","freshness of each version applied (ms)");
  }
  set("freshness_ms",x.freshness_seconds===undefined||x.freshness_seconds<0?"-":(1000*x.freshness_seconds).toFixed(1));
  chart(d.history||[],trainer);
}
function tick(){
  fetch("/status.json",{cache:"no-store"}).then(function(r){return r.json();}).then(render)
    .catch(function(e){set("updated","unreachable ("+e+")");});
}
tick();setInterval(tick,1000);
</script>
</body></html>
)HTML";

}  // namespace

absl::StatusOr<std::unique_ptr<MonitoringServer>> MonitoringServer::Create(
    const Options& options, Sources sources, const std::string& flag) {
  if (!sources.status) return absl::InvalidArgumentError("sources.status must be set");
  if (options.history_points < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("history_points must be >= 1, got ", options.history_points));
  }
  if (options.sample_every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("sample_every must be > 0");
  }
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Create(options.http);
  if (!http.ok()) {
    std::string message(http.status().message());
    if (message.rfind("listen ", 0) == 0) message = flag + message.substr(6);
    return absl::Status(http.status().code(), message);
  }
  return std::unique_ptr<MonitoringServer>(
      new MonitoringServer(options, std::move(sources), *std::move(http)));
}

MonitoringServer::MonitoringServer(const Options& options, Sources sources,
                                   std::unique_ptr<HttpServer> http)
    : options_(options), sources_(std::move(sources)), http_(std::move(http)) {
  http_->Handle("/metrics", [this] {
    HttpServer::Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = MetricsText();
    return response;
  });
  http_->Handle("/status.json", [this] {
    HttpServer::Response response;
    response.content_type = "application/json";
    response.body = StatusJson();
    return response;
  });
  for (const char* path : {"/status", "/"}) {
    http_->Handle(path, [] {
      HttpServer::Response response;
      response.content_type = "text/html; charset=utf-8";
      response.body = StatusPageHtml();
      return response;
    });
  }
}

MonitoringServer::~MonitoringServer() { Shutdown(); }

absl::Status MonitoringServer::Start() {
  if (absl::Status started = http_->Start(); !started.ok()) return started;
  TakeSample();
  sampler_ = std::thread([this] { SampleLoop(); });
  return absl::OkStatus();
}

void MonitoringServer::Shutdown() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (sampler_.joinable()) sampler_.join();
  http_->Shutdown();
}

void MonitoringServer::SampleLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.sample_every)) TakeSample();
}

void MonitoringServer::TakeSample() {
  const StatusResponse status = sources_.status();
  Sample sample;
  sample.unix_ms = absl::ToUnixMillis(absl::Now());
  sample.version = status.version();
  sample.accuracy = status.prequential_accuracy();
  sample.served_accuracy = status.served_prequential_accuracy();
  if (sources_.extra) {
    const google::protobuf::Struct extra = sources_.extra();
    const auto freshness = extra.fields().find("freshness_seconds");
    if (freshness != extra.fields().end() && freshness->second.has_number_value()) {
      sample.freshness_seconds = freshness->second.number_value();
    }
  }
  absl::MutexLock lock(&mu_);
  history_.push_back(sample);
  while (history_.size() > static_cast<size_t>(options_.history_points)) {
    history_.pop_front();
  }
}

std::string MonitoringServer::MetricsText() const {
  std::vector<prometheus::MetricFamily> families = StatusMetricFamilies(sources_.status());
  for (const prometheus::Collectable* collectable : sources_.collectables) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

std::string MonitoringServer::StatusJson() const {
  google::protobuf::util::JsonPrintOptions print;
  print.always_print_primitive_fields = true;
  print.preserve_proto_field_names = true;
  std::string status_json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(sources_.status(), &status_json, print);
  std::string extra_json = "{}";
  if (sources_.extra) {
    extra_json.clear();
    (void)google::protobuf::util::MessageToJsonString(sources_.extra(), &extra_json, print);
  }
  std::string history = "[";
  {
    absl::MutexLock lock(&mu_);
    for (const Sample& sample : history_) {
      if (history.size() > 1) history += ",";
      absl::StrAppend(&history, "[", sample.unix_ms, ",", sample.version, ",",
                      absl::StrFormat("%.6f,%.6f,%.6f", sample.accuracy,
                                      sample.served_accuracy, sample.freshness_seconds),
                      "]");
    }
  }
  history += "]";
  return absl::StrCat("{\"status\":", status_json, ",\"extra\":", extra_json,
                      ",\"history\":", history, "}");
}

const std::string& MonitoringServer::StatusPageHtml() {
  static const std::string* const kPage = new std::string(kStatusPage);
  return *kPage;
}

}  // namespace contrail
