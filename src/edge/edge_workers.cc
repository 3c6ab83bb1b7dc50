#include "edge/edge_workers.h"

#include <gnutls/crypto.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <charconv>
#include <cmath>
#include <map>
#include <sstream>

#include "edge/name_certs.h"
#include "edge/public_listener.h"
#include "edge/tls_server_stream.h"
#include "edge/tunnel_service.h"
#include "edge/worker_directory.h"

namespace wtmesh::edge {

namespace asio = boost::asio;

// --- /metrics of several workers ----------------------------------------------------------------

std::string merge_metrics_texts(const std::vector<std::string>& texts) {
  struct Family {
    std::vector<std::string> meta;   // HELP and TYPE lines
    std::vector<std::string> order;  // series keys (name{labels}) as first seen
    std::map<std::string, double> sums;
  };
  std::vector<std::string> families;  // names as first seen
  std::map<std::string, Family> by_name;
  auto family_of = [&](const std::string& name) -> Family& {
    auto [it, fresh] = by_name.try_emplace(name);
    if (fresh) families.push_back(name);
    return it->second;
  };
  for (const std::string& text : texts) {
    std::istringstream in(text);
    std::string line;
    std::string current;  // the family the last HELP/TYPE line named
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
        const size_t end = line.find(' ', 7);
        current = line.substr(7, end == std::string::npos ? std::string::npos : end - 7);
        Family& f = family_of(current);
        if (f.meta.size() < 2 && std::find(f.meta.begin(), f.meta.end(), line) == f.meta.end())
          f.meta.push_back(line);
        continue;
      }
      if (line[0] == '#') continue;
      const size_t space = line.rfind(' ');
      if (space == std::string::npos) continue;
      const std::string key = line.substr(0, space);
      const std::string name = key.substr(0, key.find('{'));
      double v = 0;
      const char* first = line.data() + space + 1;
      const auto [ptr, ec] = std::from_chars(first, line.data() + line.size(), v);
      if (ec != std::errc()) continue;
      // A sample belongs to the family its HELP named when its name extends it (_total etc. do not
      // occur here, but stay with their family if they did).
      Family& f = family_of(!current.empty() && name.starts_with(current) ? current : name);
      auto [it, fresh] = f.sums.try_emplace(key, 0.0);
      if (fresh) f.order.push_back(key);
      it->second += v;
    }
  }
  std::string out;
  for (const std::string& name : families) {
    const Family& f = by_name[name];
    if (f.order.empty()) continue;
    for (const std::string& m : f.meta) out += m + "\n";
    for (const std::string& key : f.order) {
      const double v = f.sums.at(key);
      char buf[64];
      if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
      } else {
        std::snprintf(buf, sizeof(buf), "%.17g", v);
      }
      out += key + " " + buf + "\n";
    }
  }
  return out;
}

// --- the workers --------------------------------------------------------------------------------

EdgeWorkers::EdgeWorkers(EdgeOptions options, unsigned count)
    : routes_(LocalRouteTable::Limits{.offline_grace = options.offline_grace}) {
  if (count < 2 || count > kMaxWorkers) {
    throw std::runtime_error("--workers is 1 to " + std::to_string(kMaxWorkers) + ", not " +
                             std::to_string(count));
  }
  quic_ = std::make_unique<quic::EndpointGroup>(count);
  EdgeWorkerContext ctx;
  ctx.count = count;
  ctx.edge_id = random_edge_id();
  ctx.routes = &routes_;
  ctx.quic = quic_.get();
  ctx.jtis = std::make_shared<JtiCache>();
  ctx.name_certs = std::make_shared<SharedNameCertIssuer>();
  ctx.auth_failures = std::make_shared<AuthFailureLimiter>(TunnelServiceConfig{}.auth_failures);
  ctx.visitor_failures = std::make_shared<AuthFailureLimiter>(TunnelServiceConfig{}.auth_failures);
  ctx.subjects = std::make_shared<SubjectLedger>();
  ctx.returned = std::make_shared<ReturnedAgents>();
  ctx.https_counts = std::make_shared<PublicListenerShared>(options.public_limits);
  ctx.http_counts = std::make_shared<PublicListenerShared>(options.public_limits);
  if (options.steer_connections) {
    ctx.https_steering = std::make_shared<PortSteering>(routes_, ctx.edge_id, ctx.https_counts, count);
    ctx.http_steering = std::make_shared<PortSteering>(routes_, ctx.edge_id, ctx.http_counts, count);
  }
  ctx.drains = std::make_shared<WorkerDrainCounts>(count);
  ctx.tcp_ports = std::make_shared<PortPool>(options.tcp.port_min, options.tcp.port_max, "TCP");
  ctx.udp_ports = std::make_shared<PortPool>(options.udp.port_min, options.udp.port_max, "UDP");
  ctx.public_ticket_key = std::make_shared<const std::vector<uint8_t>>(TlsServerConfig::new_ticket_key());
  gnutls_rnd(GNUTLS_RND_RANDOM, ctx.challenge_secret.data(), ctx.challenge_secret.size());
  options.admin_listen.reset();  // the caller serves /metrics and /ready for all (metrics_text, ready)
  // One after another on this thread: the first creates the state directory's certificates and keys,
  // and picks the ports the others bind.
  for (unsigned i = 0; i < count; ++i) {
    auto w = std::make_unique<Worker>();
    EdgeOptions o = options;
    ctx.index = i;
    if (i > 0) {
      EdgeServer& first = *workers_[0]->server;
      o.listen.port(first.local_endpoint().port());
      if (o.http_listen && first.http_endpoint()) o.http_listen->port(first.http_endpoint()->port());
      ctx.resumption = first.quic_tls_context();
    }
    o.worker = ctx;
    w->server = std::make_unique<EdgeServer>(w->io, std::move(o));
    workers_.push_back(std::move(w));
  }
  std::vector<WorkerDirectory*> dirs;
  for (auto& w : workers_) dirs.push_back(w->server->worker_directory());
  for (WorkerDirectory* d : dirs) d->set_workers(dirs);
  spdlog::info("edge: {} workers on one address (edge id {})", count, ctx.edge_id);
}

EdgeWorkers::~EdgeWorkers() {
  stop();
  join();
  // Servers before what they share (route table, endpoint group); each before its io_context.
  for (auto& w : workers_) w->server.reset();
}

void EdgeWorkers::start() {
  if (started_) return;
  started_ = true;
  for (auto& w : workers_) {
    Worker* raw = w.get();
    raw->thread = std::thread([raw] {
      auto guard = asio::make_work_guard(raw->io);  // runs until stop(), also once idle
      raw->io.run();
    });
  }
}

void EdgeWorkers::stop() {
  for (auto& w : workers_) w->io.stop();
}

void EdgeWorkers::join() {
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

bool EdgeWorkers::ready() {
  for (unsigned i = 0; i < size(); ++i) {
    if (!workers_[i]->server->ready()) return false;  // an atomic: no need to ask the thread
  }
  return true;
}

std::string EdgeWorkers::metrics_text() {
  std::vector<std::string> texts;
  for (unsigned i = 0; i < size(); ++i) {
    if (!started_) {
      texts.push_back(workers_[i]->server->metrics_text());
      continue;
    }
    auto p = std::make_shared<std::promise<std::string>>();
    auto f = p->get_future();
    asio::post(workers_[i]->io, [p, s = workers_[i]->server.get()] { p->set_value(s->metrics_text()); });
    if (f.wait_for(kAskTimeout) == std::future_status::ready) {
      texts.push_back(f.get());
    } else {
      spdlog::warn("edge: worker {} did not answer for /metrics within {} s", i, kAskTimeout.count());
    }
  }
  return merge_metrics_texts(texts);
}

void EdgeWorkers::drain(DrainPlan::Options options, std::function<void()> done) {
  auto left = std::make_shared<std::atomic<unsigned>>(size());
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& w : workers_) {
    asio::post(w->io, [s = w->server.get(), options, left, finish] {
      s->drain(options, [left, finish] {
        if (left->fetch_sub(1) == 1 && *finish) (*finish)();
      });
    });
  }
}

void EdgeWorkers::shutdown() {
  for (auto& w : workers_) asio::post(w->io, [s = w->server.get()] { s->shutdown(); });
}

}  // namespace wtmesh::edge
