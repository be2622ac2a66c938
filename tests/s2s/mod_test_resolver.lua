-- mod_test_resolver: points Prosody 0.12's legacy DNS resolver (net.dns, used by net.adns when
-- lua-unbound is absent) at the test suite's DNS stub, "HOST:PORT" from the option
-- test_dns_server, instead of the name servers of /etc/resolv.conf on port 53.
-- Invariant: only resolvers created after this module loads are affected, and s2s creates a
-- fresh resolver for every connection attempt (net.resolvers.basic), so all s2s lookups are.
module:set_global();

local server = module:get_option_string("test_dns_server");
if not server then
	module:log("error", "test_dns_server is not set; DNS left alone");
	return;
end
local host, port = server:match("^([%d%.]+):(%d+)$");
assert(host, "test_dns_server must be IPV4:PORT");
port = tonumber(port);

local adns = require "net.adns";
local dns = require "net.dns";
if adns.resolver and adns.resolver()._resolver == nil then
	module:log("error", "net.adns is not the legacy resolver (lua-unbound?); test DNS not applied");
	return;
end

-- net.dns keeps its resolver class private; every resolver object has it as metatable.
local class = getmetatable(dns.resolver());

-- No random delay before each query (net.dns adds up to a second, against timing
-- fingerprints): it would only slow every new s2s connection of the tests down.
class.jitter, class.retry_jitter = false, false;

function class:adddefaultnameservers()
	self:addnameserver(host);
end

-- getsocket() hard-codes port 53 in setpeername(); the socket wrapper net.adns installs is
-- where the connected UDP socket is made, so swap the port there.
local orig_wrapper_set = class.socket_wrapper_set;
function class:socket_wrapper_set(wrapper)
	return orig_wrapper_set(self, function (sock, resolver)
		local handler, err = wrapper(sock, resolver);
		if not handler then return handler, err; end
		local setpeername = handler.setpeername;
		handler.setpeername = function (h, peer, _)
			return setpeername(h, peer, port);
		end
		return handler;
	end);
end

module:log("info", "DNS queries go to %s port %d", host, port);
