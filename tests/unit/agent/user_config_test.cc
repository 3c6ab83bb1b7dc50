// The user's login (agent/user_config.h): where it lives, what `wtmesh login` writes and with which
// modes (under umask 000, so nothing is right by accident), what `logout` removes, and how the command
// line, WTMESH_TOKEN / WTMESH_CREDENTIAL and the login combine.
#include "agent/user_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tunnel/credential.h"

namespace wtmesh::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

class UserConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "wtmesh-login-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ / "config" / "wtmesh";
    old_umask_ = ::umask(0);  // as tests/peers/secrets_on_disk.sh: modes must not come from the umask
    edge_key_ = std::make_unique<tunnel::SigningKey>(tunnel::SigningKey::generate());
  }
  void TearDown() override {
    ::umask(old_umask_);
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // A credential file for NAME (hosts NAME.localhost, or *.localhost for "*"), world-readable as a
  // download might be.
  fs::path credential_file(const std::string& name, const std::string& domain = "localhost",
                           std::chrono::seconds valid = 24h) {
    const std::string host = name == "*" ? "*." + domain : name + "." + domain;
    const auto cred = tunnel::Credential::issue(*edge_key_, name, {host}, {}, valid);
    const fs::path file = root_ / (name == "*" ? "wild.cred" : name + ".cred");
    spit(file, cred.to_json());
    ::chmod(file.c_str(), 0644);
    return file;
  }

  LoginOptions login_for(const fs::path& cred) {
    LoginOptions o;
    o.edge = "https://127.0.0.1:4433";
    o.credential = cred;
    return o;
  }

  fs::path root_, dir_;
  mode_t old_umask_ = 0;
  std::unique_ptr<tunnel::SigningKey> edge_key_;
};

TEST(UserConfigDir, XdgConfigHomeThenHome) {
  std::string error;
  EXPECT_EQ(user_config_dir("/x/cfg", "/home/u", &error), fs::path("/x/cfg/wtmesh"));
  EXPECT_EQ(user_config_dir(nullptr, "/home/u", &error), fs::path("/home/u/.config/wtmesh"));
  // The XDG spec: an empty or relative XDG_CONFIG_HOME is ignored.
  EXPECT_EQ(user_config_dir("", "/home/u", &error), fs::path("/home/u/.config/wtmesh"));
  EXPECT_EQ(user_config_dir("rel/cfg", "/home/u", &error), fs::path("/home/u/.config/wtmesh"));
  EXPECT_FALSE(user_config_dir(nullptr, nullptr, &error));
  EXPECT_NE(error.find("HOME"), std::string::npos) << error;
  EXPECT_FALSE(user_config_dir(nullptr, "relative", &error));
}

TEST_F(UserConfigTest, LoginWritesPrivateFilesInAPrivateDirectory) {
  const fs::path cred = credential_file("app");
  spit(root_ / "ca.pem", "-----BEGIN CERTIFICATE-----\n");
  LoginOptions o = login_for(cred);
  o.ca = root_ / "ca.pem";
  const auto saved = save_login(dir_, o);
  EXPECT_EQ(saved.name(), "app");
  EXPECT_EQ(mode_of(dir_), 0700u);
  EXPECT_EQ(mode_of(dir_.parent_path()), 0700u);  // ~/.config made for us: private too
  EXPECT_EQ(mode_of(dir_ / "agent.yml"), 0600u);
  EXPECT_EQ(mode_of(dir_ / "agent.cred"), 0600u);
  // The credential is a copy (the original may go away); the CA is referred to by absolute path.
  EXPECT_EQ(slurp(dir_ / "agent.cred"), slurp(cred));
  const auto cfg = load_user_config(dir_);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->edge, "https://127.0.0.1:4433");
  ASSERT_TRUE(cfg->credential_file);
  EXPECT_EQ(*cfg->credential_file, dir_ / "agent.cred");
  ASSERT_TRUE(cfg->ca);
  EXPECT_EQ(*cfg->ca, root_ / "ca.pem");
  EXPECT_TRUE(cfg->tunnels.empty());
  fs::remove(cred);
  EXPECT_NO_THROW(tunnel::Credential::load(*cfg->credential_file));
  // An existing directory with a loose mode is tightened.
  ::chmod(dir_.c_str(), 0755);
  save_login(dir_, login_for(credential_file("app")));
  EXPECT_EQ(mode_of(dir_), 0700u);
}

TEST_F(UserConfigTest, LoginRefusesBadInputAndWritesNothing) {
  EXPECT_THROW(save_login(dir_, login_for(root_ / "missing.cred")), std::runtime_error);
  spit(root_ / "junk.cred", "not a credential");
  EXPECT_THROW(save_login(dir_, login_for(root_ / "junk.cred")), std::runtime_error);
  LoginOptions bad_edge = login_for(credential_file("app"));
  bad_edge.edge = "ftp://nowhere";
  EXPECT_THROW(save_login(dir_, bad_edge), std::runtime_error);
  LoginOptions bad_ca = login_for(credential_file("app"));
  bad_ca.ca = root_ / "no-such-ca.pem";
  EXPECT_THROW(save_login(dir_, bad_ca), std::runtime_error);
  LoginOptions bad_name = login_for(credential_file("app"));
  bad_name.name = "not a name";
  EXPECT_THROW(save_login(dir_, bad_name), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir_ / "agent.yml"));
  EXPECT_FALSE(fs::exists(dir_ / "agent.cred"));
  // An expired credential.
  const auto cred = tunnel::Credential::issue(*edge_key_, "old", {"old.localhost"}, {}, 20s,
                                              std::chrono::system_clock::now() - 1h);
  spit(root_ / "old.cred", cred.to_json());
  try {
    save_login(dir_, login_for(root_ / "old.cred"));
    ADD_FAILURE() << "an expired credential was stored";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("expired"), std::string::npos) << e.what();
  }
}

TEST_F(UserConfigTest, LoginKeepsTheUsersTunnelsAndLogoutKeepsThemToo) {
  fs::create_directories(dir_);
  spit(dir_ / "agent.yml",
       "edge: https://old.example:1\ntoken: old-token\nsession_token_ttl: 2m\n"
       "tunnels:\n  - {name: web, local_port: 8080}\n");
  LoginOptions o = login_for(credential_file("app"));
  o.name = "app";
  o.domain = "localhost";
  save_login(dir_, o);
  auto cfg = load_user_config(dir_);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->edge, "https://127.0.0.1:4433");
  EXPECT_TRUE(cfg->token.empty());  // the old secret is replaced, not kept beside the new one
  EXPECT_TRUE(cfg->credential_file);
  EXPECT_EQ(cfg->session_token_ttl, 120s);
  EXPECT_EQ(cfg->name, "app");
  EXPECT_TRUE(cfg->has_domain);
  ASSERT_EQ(cfg->tunnels.size(), 1u);
  EXPECT_EQ(cfg->tunnels[0].hostname, "web.localhost");
  EXPECT_EQ(mode_of(dir_ / "agent.yml"), 0600u);

  EXPECT_TRUE(clear_login(dir_));
  EXPECT_FALSE(fs::exists(dir_ / "agent.cred"));
  const std::string left = slurp(dir_ / "agent.yml");
  EXPECT_EQ(left.find("edge"), std::string::npos) << left;
  EXPECT_NE(left.find("web"), std::string::npos) << left;
  EXPECT_EQ(mode_of(dir_ / "agent.yml"), 0600u);
  // What logout leaves still reads (no edge, no secret), and a new login fills it in again.
  cfg = load_user_config(dir_);
  ASSERT_TRUE(cfg);
  EXPECT_TRUE(cfg->edge.empty());
  EXPECT_EQ(cfg->tunnels.size(), 1u);
  save_login(dir_, login_for(credential_file("app")));
  cfg = load_user_config(dir_);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->edge, "https://127.0.0.1:4433");
  EXPECT_EQ(cfg->tunnels.size(), 1u);
}

TEST_F(UserConfigTest, LogoutRemovesALoginOnlyFileAndIsIdempotent) {
  save_login(dir_, login_for(credential_file("app")));
  EXPECT_TRUE(clear_login(dir_));
  EXPECT_FALSE(fs::exists(dir_ / "agent.yml"));
  EXPECT_FALSE(fs::exists(dir_ / "agent.cred"));
  EXPECT_FALSE(clear_login(dir_));
  EXPECT_FALSE(load_user_config(dir_));
}

TEST_F(UserConfigTest, ABrokenOrHugeUserConfigIsAClearError) {
  fs::create_directories(dir_);
  spit(dir_ / "agent.yml", "edge: [unclosed\n");
  try {
    load_user_config(dir_);
    ADD_FAILURE() << "a broken file was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("logout"), std::string::npos) << e.what();
  }
  spit(dir_ / "agent.yml", "edge: https://127.0.0.1:4433\nname: x\n" + std::string(kMaxConfigFileSize, '#'));
  EXPECT_THROW(load_user_config(dir_), std::runtime_error);
  EXPECT_THROW(save_login(dir_, login_for(credential_file("app"))), std::runtime_error);
}

TEST(UserConfigKind, UserFilesMayOmitTunnelsAndSecretAndNameADefault) {
  std::string error;
  auto cfg = parse_agent_config("edge: https://e:1\nname: app\n", "/b", &error, ConfigKind::kUser);
  ASSERT_TRUE(cfg) << error;
  EXPECT_EQ(cfg->name, "app");
  EXPECT_FALSE(cfg->has_domain);
  // `wtmesh agent --config` files stay strict: tunnels and exactly one secret, no name key.
  EXPECT_FALSE(parse_agent_config("edge: https://e:1\ntoken: t\n", "/b", &error));
  EXPECT_FALSE(parse_agent_config("edge: https://e:1\ntunnels: [{name: a, local_port: 1}]\n", "/b", &error));
  EXPECT_FALSE(parse_agent_config(
      "edge: https://e:1\ntoken: t\nname: a\ntunnels: [{name: a, local_port: 1}]\n", "/b", &error));
  EXPECT_NE(error.find("unknown key \"name\""), std::string::npos) << error;
  // Two secrets are wrong in both; a bad name too.
  EXPECT_FALSE(
      parse_agent_config("edge: https://e:1\ntoken: t\ntoken_file: f\n", "/b", &error, ConfigKind::kUser));
  EXPECT_FALSE(parse_agent_config("edge: https://e:1\nname: a b\n", "/b", &error, ConfigKind::kUser));
}

AgentConfig login_config() {
  AgentConfig c;
  c.edge = "https://edge.example:4433";
  c.credential_file = "/cfg/wtmesh/agent.cred";
  c.ca = "/srv/ca.pem";
  c.name = "stored";
  c.domain = "example.test";
  c.has_domain = true;
  return c;
}

TEST(ResolveAgent, TheLoginAloneIsEnough) {
  std::string error;
  auto r = resolve_agent({}, {}, login_config(), "/cfg/wtmesh/agent.yml", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->edge, "https://edge.example:4433");
  ASSERT_TRUE(r->credential_file);
  EXPECT_EQ(*r->credential_file, "/cfg/wtmesh/agent.cred");
  ASSERT_TRUE(r->ca);
  EXPECT_EQ(*r->ca, "/srv/ca.pem");
  EXPECT_EQ(r->name, "stored");
  EXPECT_EQ(r->domain, "example.test");
  EXPECT_EQ(r->secret_from, "login (/cfg/wtmesh/agent.yml)");
}

TEST(ResolveAgent, FlagsWinOverTheEnvironmentWhichWinsOverTheLogin) {
  std::string error;
  AgentEnvironment env{"env-token", std::nullopt};
  AgentFlags flags;
  flags.token_file = "/run/tok";
  flags.name = "cli";
  flags.domain = "cli.test";
  flags.ca = "/cli/ca.pem";
  auto r = resolve_agent(flags, env, login_config(), "f", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->secret_from, "--token-file");
  EXPECT_EQ(*r->token_file, "/run/tok");
  EXPECT_TRUE(r->token.empty());
  EXPECT_FALSE(r->credential_file);
  EXPECT_EQ(r->name, "cli");
  EXPECT_EQ(r->domain, "cli.test");
  EXPECT_EQ(*r->ca, "/cli/ca.pem");
  // No secret flag: the environment before the login.
  r = resolve_agent({}, env, login_config(), "f", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->secret_from, "WTMESH_TOKEN");
  EXPECT_EQ(r->token, "env-token");
  EXPECT_FALSE(r->credential_file);
  EXPECT_EQ(*r->ca, "/srv/ca.pem");  // the rest still from the login
  // WTMESH_CREDENTIAL: a path, or the file's JSON.
  r = resolve_agent({}, {std::nullopt, "/keys/a.cred"}, login_config(), "f", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(*r->credential_file, "/keys/a.cred");
  r = resolve_agent({}, {std::nullopt, "{\"wtmesh_credential\":1}"}, login_config(), "f", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_FALSE(r->credential_file);
  EXPECT_EQ(r->credential_json, "{\"wtmesh_credential\":1}");
  EXPECT_EQ(r->secret_from, "WTMESH_CREDENTIAL");
  // Both variables: ambiguous.
  EXPECT_FALSE(resolve_agent({}, {"t", "/c"}, login_config(), "f", &error));
  EXPECT_NE(error.find("both"), std::string::npos) << error;
  // Two secret flags.
  AgentFlags two;
  two.token = "t";
  two.credential = "/c";
  EXPECT_FALSE(resolve_agent(two, {}, login_config(), "f", &error));
}

TEST(ResolveAgent, TheLoginBelongsToItsEdge) {
  std::string error;
  AgentFlags other;
  other.edge = "https://other.example:4433";
  // Another edge gets neither the login's credential nor its CA, name or domain.
  EXPECT_FALSE(resolve_agent(other, {}, login_config(), "/cfg/agent.yml", &error));
  EXPECT_NE(error.find("the login in /cfg/agent.yml is for https://edge.example:4433"), std::string::npos)
      << error;
  other.token_file = "/t";
  auto r = resolve_agent(other, {}, login_config(), "f", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_FALSE(r->ca);
  EXPECT_TRUE(r->name.empty());
  EXPECT_TRUE(r->domain.empty());
  // The same edge spelled with a trailing slash is the login's.
  AgentFlags same;
  same.edge = "https://edge.example:4433/";
  r = resolve_agent(same, {}, login_config(), "f", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_TRUE(r->credential_file);
}

TEST(ResolveAgent, NothingAnywhereSaysHowToLogIn) {
  std::string error;
  EXPECT_FALSE(resolve_agent({}, {}, std::nullopt, "", &error));
  EXPECT_NE(error.find("wtmesh login"), std::string::npos) << error;
  AgentFlags edge_only;
  edge_only.edge = "https://e:1";
  EXPECT_FALSE(resolve_agent(edge_only, {}, std::nullopt, "", &error));
  EXPECT_NE(error.find("WTMESH_CREDENTIAL"), std::string::npos) << error;
}

TEST_F(UserConfigTest, DefaultNameComesFromTheCredentialOrIsRandom) {
  const auto app = tunnel::Credential::load(credential_file("app", "example.test"));
  auto t = default_tunnel_name("", "", &app);
  EXPECT_EQ(t.name, "app");
  EXPECT_EQ(t.domain, "example.test");
  EXPECT_FALSE(t.random);
  // A configured name or domain wins.
  t = default_tunnel_name("mine", "", &app);
  EXPECT_EQ(t.name, "mine");
  EXPECT_EQ(t.domain, "example.test");
  // A wildcard grant: a random name under its domain.
  const auto wild = tunnel::Credential::load(credential_file("*", "example.test"));
  t = default_tunnel_name("", "", &wild);
  EXPECT_TRUE(t.random);
  EXPECT_EQ(t.domain, "example.test");
  EXPECT_TRUE(std::regex_match(t.name, std::regex("[a-z]+-[a-z]+-[0-9a-f]{4}"))) << t.name;
  EXPECT_TRUE(make_tunnel(t.name, t.domain, nullptr));
  // No credential (a token): random, under localhost unless told.
  t = default_tunnel_name("", "", nullptr);
  EXPECT_TRUE(t.random);
  EXPECT_EQ(t.domain, "localhost");
  // Names vary, and follow the random source.
  uint32_t n = 0;
  const auto counter = [&n] { return n++; };
  EXPECT_EQ(random_tunnel_name(counter), "brave-cedar-0000");
  EXPECT_NE(random_tunnel_name(), random_tunnel_name());
}

}  // namespace
}  // namespace wtmesh::agent
