#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "agent/tunnel_config.h"

namespace wtmesh::agent {
namespace {

std::optional<AgentConfig> parse(const std::string& yaml, std::string* error) {
  return parse_agent_config(yaml, "/etc/wtmesh", error);
}

std::string error_of(const std::string& yaml) {
  std::string error;
  EXPECT_FALSE(parse(yaml, &error)) << yaml;
  return error;
}

TEST(AgentConfig, UpstreamProtocolAndTlsKeys) {
  std::string error;
  auto c = parse(R"(
edge: https://127.0.0.1:4433
token: t
tunnels:
  - {name: plain, local_port: 3000}
  - {name: grpc, local_port: 50051, upstream_protocol: h2c}
  - name: secure
    local_port: 8443
    upstream_tls: true
    upstream_ca: certs/ca.pem
    upstream_sni: app.test
  - {name: self, local_port: 8444, upstream_tls: yes, upstream_insecure: true}
  - {name: quic, local_port: 4433, upstream_protocol: h3, upstream_insecure: true}
  - {name: quicca, local_port: 4434, upstream_protocol: h3, upstream_ca: ca.pem, upstream_sni: a.test}
)",
                 &error);
  ASSERT_TRUE(c) << error;
  ASSERT_EQ(c->tunnels.size(), 6u);
  EXPECT_EQ(c->tunnels[0].upstream_url(), "http://127.0.0.1:3000");
  EXPECT_FALSE(c->tunnels[0].upstream_tls);
  EXPECT_EQ(c->tunnels[1].upstream_protocol, "h2c");
  EXPECT_EQ(c->tunnels[1].upstream_url(), "h2c://127.0.0.1:50051");
  EXPECT_TRUE(c->tunnels[2].upstream_tls);
  EXPECT_EQ(c->tunnels[2].upstream_ca, std::filesystem::path("/etc/wtmesh/certs/ca.pem"));
  EXPECT_EQ(c->tunnels[2].upstream_sni, "app.test");
  EXPECT_EQ(c->tunnels[2].upstream_url(), "https://127.0.0.1:8443");
  EXPECT_TRUE(c->tunnels[3].upstream_tls);
  EXPECT_TRUE(c->tunnels[3].upstream_insecure);
  // h3 implies TLS: the TLS options apply without upstream_tls.
  EXPECT_EQ(c->tunnels[4].upstream_protocol, "h3");
  EXPECT_EQ(c->tunnels[4].upstream_url(), "h3://127.0.0.1:4433");
  EXPECT_TRUE(c->tunnels[4].upstream_insecure);
  EXPECT_EQ(c->tunnels[5].upstream_sni, "a.test");
  EXPECT_TRUE(c->tunnels[5].upstream_ca);

  const std::string head = "edge: https://127.0.0.1:4433\ntoken: t\ntunnels:\n  - {name: a, local_port: 1, ";
  EXPECT_NE(error_of(head + "upstream_protocol: spdy}").find("must be http1, h2c or h3"), std::string::npos);
  EXPECT_NE(
      error_of(head + "upstream_protocol: h3, upstream_insecure: true, upstream_ca: x.pem}").find("not both"),
      std::string::npos);
  EXPECT_NE(error_of(head + "upstream_tls: maybe}").find("upstream_tls must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of(head + "upstream_protocol: h2c, upstream_tls: true}").find("ALPN"), std::string::npos);
  EXPECT_NE(error_of(head + "upstream_insecure: true}").find("need TLS"), std::string::npos);
  EXPECT_NE(
      error_of(head + "upstream_tls: true, upstream_insecure: true, upstream_ca: x.pem}").find("not both"),
      std::string::npos);
  EXPECT_NE(error_of(head + "upstream_alpn: h2}").find("unknown key"), std::string::npos);
}

TEST(AgentConfig, VisitorAuthKeys) {
  std::string error;
  auto c = parse(R"(
edge: https://127.0.0.1:4433
token: t
tunnels:
  - name: app
    local_port: 3000
    basic_auth: [alice:one, "bob:two words"]
    allow_cidr: 10.0.0.0/8
    deny_cidr: [10.9.0.0/16, "2001:db8::/32"]
  - {name: open, local_port: 3001}
)",
                 &error);
  ASSERT_TRUE(c) << error;
  const auto& v = c->tunnels[0].visitor;
  ASSERT_EQ(v.basic.size(), 2u);
  EXPECT_EQ(v.basic[1].user, "bob");
  EXPECT_TRUE(tunnel::basic_password_matches(v.basic[1], "two words"));
  ASSERT_EQ(v.allow.size(), 1u);
  EXPECT_EQ(tunnel::to_string(v.allow[0]), "10.0.0.0/8");
  ASSERT_EQ(v.deny.size(), 2u);
  EXPECT_TRUE(c->tunnels[1].visitor.empty());
  const std::string head = "edge: https://127.0.0.1:4433\ntoken: t\ntunnels:\n";
  EXPECT_NE(error_of(head + "  - {name: a, local_port: 1, basic_auth: nocolon}\n").find("basic auth"),
            std::string::npos);
  EXPECT_NE(error_of(head + "  - {name: a, local_port: 1, allow_cidr: 10.1.0.0/8}\n").find("allow_cidr"),
            std::string::npos);
  EXPECT_NE(error_of(head + "  - {name: a, type: tcp, local_port: 1, deny_cidr: 10.0.0.0/8}\n")
                .find("http tunnels"),
            std::string::npos);
  EXPECT_NE(error_of(head + "  - {name: a, local_port: 1, basic_auth: {x: y}}\n").find("list"),
            std::string::npos);
  const std::string err =
      error_of(head + "  - {name: a, local_port: 1, basic_auth: [\"alice:secretpw\", nocolon]}\n");
  EXPECT_EQ(err.find("secretpw"), std::string::npos) << "errors never show a password: " << err;
}

TEST(AgentConfig, TcpTunnels) {
  std::string error;
  auto c = parse(R"(
edge: https://127.0.0.1:4433
token: t
tunnels:
  - {name: db, type: tcp, local_port: 5432, remote_port: 20042, proxy_protocol: true}
  - {name: ssh, type: tcp, upstream: "[::1]:22", private: yes}
)",
                 &error);
  ASSERT_TRUE(c) << error;
  ASSERT_EQ(c->tunnels.size(), 2u);
  const TunnelSpec& db = c->tunnels[0];
  EXPECT_EQ(db.type, "tcp");
  EXPECT_EQ(db.hostname, "db.localhost");
  EXPECT_EQ(db.remote_port, 20042);
  EXPECT_TRUE(db.proxy_protocol);
  EXPECT_FALSE(db.private_only);
  EXPECT_EQ(db.upstream_url(), "127.0.0.1:5432") << "a tcp tunnel's target has no scheme";
  EXPECT_TRUE(c->tunnels[1].private_only);
  EXPECT_EQ(c->tunnels[1].upstream_url(), "[::1]:22");

  const std::string head = "edge: https://e:1\ntoken: t\ntunnels:\n  - ";
  EXPECT_NE(error_of(head + "{name: a, type: sctp, local_port: 1}")
                .find("the types are http, tcp, udp and connect"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: tcp, local_port: 1, upstream_tls: true}").find("upstream_*"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: tcp, local_port: 1, remote_port: 70000}").find(".remote_port"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: tcp, local_port: 1, private: true, remote_port: 2}")
                .find("is private"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, local_port: 1, proxy_protocol: true}").find("for tcp tunnels"),
            std::string::npos)
      << "tcp keys on an http tunnel";
}

TEST(AgentConfig, ConnectEntries) {
  std::string error;
  auto c = parse(R"(
edge: https://127.0.0.1:4433
token: t
tunnels:
  - {name: web, local_port: 3000}
  - {name: db, type: connect, listen: "127.0.0.1:15432"}
  - {name: redis.mesh.localhost, type: connect, listen: "[::1]:16379"}
  - {name: dns, type: connect, listen: "127.0.0.1:15353", udp: true}
)",
                 &error);
  ASSERT_TRUE(c) << error;
  ASSERT_EQ(c->tunnels.size(), 1u) << "connects are not registered";
  ASSERT_EQ(c->connects.size(), 3u);
  EXPECT_FALSE(c->connects[0].udp);
  EXPECT_TRUE(c->connects[2].udp) << "connect --udp";
  EXPECT_EQ(c->connects[2].listen(), "127.0.0.1:15353");
  EXPECT_EQ(c->connects[0].name, "db");
  EXPECT_EQ(c->connects[0].listen(), "127.0.0.1:15432");
  EXPECT_EQ(c->connects[1].name, "redis.mesh.localhost");
  EXPECT_EQ(c->connects[1].listen(), "[::1]:16379");

  const std::string head = "edge: https://e:1\ntoken: t\ntunnels:\n  - ";
  EXPECT_NE(error_of(head + "{name: db, type: connect}").find(".listen must be HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: db, type: connect, listen: \"example.com:1\"}").find(".listen"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: db, type: connect, listen: \"127.0.0.1:1\", local_port: 2}")
                .find("a connect entry has name, type, listen and udp"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: db, type: connect, listen: \"127.0.0.1:1\", udp: maybe}")
                .find(".udp must be true or false"),
            std::string::npos);
  EXPECT_NE(
      error_of(head + "{name: \"bad name\", type: connect, listen: \"127.0.0.1:1\"}").find("is not a name"),
      std::string::npos);
}

TEST(AgentConfig, UdpTunnels) {
  std::string error;
  auto c = parse(R"(
edge: https://127.0.0.1:4433
token: t
tunnels:
  - {name: dns, type: udp, local_port: 5353, remote_port: 21053}
  - {name: game, type: udp, upstream: "[::1]:27015", private: true}
  - {name: iperf, type: tcp, local_port: 5201, remote_port: 20201}
  - {name: iperf, type: udp, local_port: 5201, remote_port: 20201}
)",
                 &error);
  ASSERT_TRUE(c) << error;
  ASSERT_EQ(c->tunnels.size(), 4u);
  const TunnelSpec& dns = c->tunnels[0];
  EXPECT_EQ(dns.type, "udp");
  EXPECT_EQ(dns.hostname, "dns.localhost");
  EXPECT_EQ(dns.remote_port, 21053);
  EXPECT_FALSE(dns.private_only);
  EXPECT_EQ(dns.upstream_url(), "127.0.0.1:5353") << "a udp tunnel's target has no scheme";
  EXPECT_TRUE(c->tunnels[1].private_only);
  EXPECT_EQ(c->tunnels[1].upstream_url(), "[::1]:27015");
  EXPECT_EQ(c->tunnels[2].type, "tcp") << "a tcp and a udp tunnel may share a name and a port number";
  EXPECT_EQ(c->tunnels[3].type, "udp");

  const std::string head = "edge: https://e:1\ntoken: t\ntunnels:\n  - ";
  EXPECT_NE(error_of(head + "{name: a, type: udp, local_port: 1, proxy_protocol: true}")
                .find("proxy_protocol is for tcp tunnels"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: udp, local_port: 1, upstream_tls: true}")
                .find("udp tunnel: upstream_*"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: udp, local_port: 1}\n  - {name: a, type: udp, local_port: 2}")
                .find("repeats the udp hostname a.localhost"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: udp, local_port: 1, remote_port: 0}").find(".remote_port"),
            std::string::npos);
  EXPECT_NE(error_of(head + "{name: a, type: udp, local_port: 1, private: true, remote_port: 2}")
                .find("is private"),
            std::string::npos);
}

TEST(AgentConfig, FullFile) {
  std::string error;
  auto c = parse(R"(
edge: https://127.0.0.1:4433
ca: state/ca.pem
token_file: /run/token
domain: example.test
tunnels:
  - name: app
    type: http
    local_port: 3000
  - {name: API, upstream: "[::1]:8080"}
  - name: web
    upstream: localhost:5173
)",
                 &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->edge, "https://127.0.0.1:4433");
  EXPECT_EQ(c->ca, std::filesystem::path("/etc/wtmesh/state/ca.pem"));
  EXPECT_EQ(c->token_file, std::filesystem::path("/run/token"));
  EXPECT_TRUE(c->token.empty());
  ASSERT_EQ(c->tunnels.size(), 3u);
  EXPECT_EQ(c->tunnels[0].id, 1u);
  EXPECT_EQ(c->tunnels[0].hostname, "app.example.test");
  EXPECT_EQ(c->tunnels[0].upstream(), "127.0.0.1:3000");
  EXPECT_EQ(c->tunnels[1].id, 2u);
  EXPECT_EQ(c->tunnels[1].hostname, "api.example.test");
  EXPECT_EQ(c->tunnels[1].upstream(), "[::1]:8080");
  EXPECT_EQ(c->tunnels[2].upstream(), "127.0.0.1:5173");
}

TEST(AgentConfig, InlineTokenAndDefaultDomain) {
  std::string error;
  auto c = parse("edge: https://edge.example:443\ntoken: abc.def.ghi\ntunnels: [{name: a, local_port: 1}]\n",
                 &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->token, "abc.def.ghi");
  EXPECT_EQ(c->tunnels[0].hostname, "a.localhost");
  EXPECT_FALSE(c->ca);
}

TEST(AgentConfig, ErrorsAreSentencesNamingTheProblem) {
  const std::string ok_head = "edge: https://127.0.0.1:4433\ntoken: t\n";
  EXPECT_NE(error_of("edge: [unclosed\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of("- a\n- b\n").find("must be a YAML mapping"), std::string::npos);
  EXPECT_NE(error_of("token: t\ntunnels: [{name: a, local_port: 1}]\n").find("edge is missing"),
            std::string::npos);
  EXPECT_NE(error_of("edge: http://x\ntoken: t\ntunnels: [{name: a, local_port: 1}]\n").find("edge:"),
            std::string::npos);
  EXPECT_NE(error_of("edge: https://x\ntunnels: [{name: a, local_port: 1}]\n").find("exactly one of token"),
            std::string::npos);
  EXPECT_NE(error_of("edge: https://x\ntoken: t\ntoken_file: f\ntunnels: [{name: a, local_port: 1}]\n")
                .find("exactly one of token"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head).find("tunnels must be a non-empty list"), std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: []\n").find("non-empty"), std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunels: []\n").find("unknown key \"tunels\" (line 3)"), std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels:\n  - name: a\n    local_prot: 3\n")
                .find("unknown key \"local_prot\" in tunnels[0] (line 5)"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{local_port: 3}]\n").find("tunnels[0] has no name"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a_b, local_port: 3}]\n").find("valid hostname"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: 'a*', local_port: 3}]\n").find("valid hostname"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a, type: quic, local_port: 3}]\n")
                .find("http, tcp, udp and connect"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a}]\n").find("exactly one of local_port and upstream"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a, local_port: 3, upstream: '127.0.0.1:4'}]\n")
                .find("exactly one"),
            std::string::npos);
  EXPECT_NE(
      error_of(ok_head + "tunnels: [{name: a, local_port: 70000}]\n").find("port number from 1 to 65535"),
      std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a, local_port: [1]}]\n").find("single value"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a, upstream: 'example.com:80'}]\n")
                .find("IP address or localhost"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a, upstream: '127.0.0.1'}]\n").find("not HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error_of(ok_head + "tunnels: [{name: a, local_port: 1}, {name: A, local_port: 2}]\n")
                .find("repeats the http hostname a.localhost"),
            std::string::npos);
}

TEST(AgentConfig, TunnelCountCap) {
  std::string yaml = "edge: https://127.0.0.1:4433\ntoken: t\ntunnels:\n";
  for (size_t i = 0; i < kMaxTunnelsPerSession; ++i)
    yaml += "  - {name: t" + std::to_string(i) + ", local_port: 80}\n";
  std::string error;
  EXPECT_TRUE(parse(yaml, &error)) << error;
  yaml += "  - {name: one-more, local_port: 80}\n";
  EXPECT_NE(error_of(yaml).find("at most 64 tunnels"), std::string::npos);
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    path_ = std::filesystem::temp_directory_path() / ("wtmesh-cfg-" + std::to_string(std::random_device{}()));
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(AgentConfig, LoadResolvesRelativePathsAndCapsSize) {
  TempFile f("edge: https://127.0.0.1:1\nca: ca.pem\ntoken: t\ntunnels: [{name: a, local_port: 1}]\n");
  std::string error;
  auto c = load_agent_config(f.path(), &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->ca, f.path().parent_path() / "ca.pem");
  EXPECT_FALSE(load_agent_config("/nonexistent/agent.yaml", &error));
  EXPECT_NE(error.find("cannot read /nonexistent/agent.yaml"), std::string::npos);
  TempFile big("# " + std::string(kMaxConfigFileSize, 'x'));
  EXPECT_FALSE(load_agent_config(big.path(), &error));
  EXPECT_NE(error.find("larger than"), std::string::npos);
}

TEST(TokenFile, FirstLineTrimmedAndCapped) {
  std::string error;
  TempFile f("  eyJabc.def.ghi \r\nsecond line\n");
  EXPECT_EQ(read_token_file(f.path(), &error), "eyJabc.def.ghi");
  TempFile empty("\n\n");
  EXPECT_FALSE(read_token_file(empty.path(), &error));
  EXPECT_NE(error.find("is empty"), std::string::npos);
  TempFile huge(std::string(20000, 'a'));
  EXPECT_FALSE(read_token_file(huge.path(), &error));
  EXPECT_NE(error.find("more than a token"), std::string::npos);
  EXPECT_FALSE(read_token_file("/nonexistent/token", &error));
}

TEST(Tunnel, MakeTunnelLowercases) {
  std::string error;
  auto t = make_tunnel("MyApp", "localhost", &error);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->hostname, "myapp.localhost");
  EXPECT_FALSE(make_tunnel("", "localhost", &error));
  EXPECT_FALSE(make_tunnel("-bad", "localhost", &error));
}

TEST(Tunnel, MakeTunnelWildcards) {
  std::string error;
  auto all = make_tunnel("*", "localhost", &error);
  ASSERT_TRUE(all) << error;
  EXPECT_EQ(all->hostname, "*.localhost");
  auto sub = make_tunnel("*.App", "localhost", &error);
  ASSERT_TRUE(sub) << error;
  EXPECT_EQ(sub->hostname, "*.app.localhost");
  for (const char* bad : {"*.", "**", "a*", "*.*.app", "*app", "a.*"}) {
    EXPECT_FALSE(make_tunnel(bad, "localhost", &error)) << bad;
    EXPECT_NE(error.find("wildcard"), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace wtmesh::agent
