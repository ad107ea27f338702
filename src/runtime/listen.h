// Binding a TCP listener from "host:port", shared by the peer transport and
// the client listeners. Includes asio: only for .cc files that use it.
#pragma once

#include <asio.hpp>
#include <string>

#include "base/result.h"
#include "runtime/peer_transport.h"

namespace synod::runtime {

// Opens, binds (with SO_REUSEADDR) and listens; `what` names the listener in
// the error ("peers", "clients").
inline base::Status listen_on(asio::ip::tcp::acceptor& acceptor, const std::string& address,
                              const std::string& what) {
  auto parts = split_address(address);
  if (!parts) return parts.error();
  try {
    asio::ip::tcp::resolver resolver(acceptor.get_executor());
    auto endpoints = resolver.resolve(parts->first, std::to_string(parts->second));
    asio::ip::tcp::endpoint endpoint = *endpoints.begin();
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
  } catch (const std::exception& e) {
    return base::Error(base::Errc::kIo, "cannot listen for " + what + " on " + address + ": " + e.what());
  }
  return {};
}

}  // namespace synod::runtime
