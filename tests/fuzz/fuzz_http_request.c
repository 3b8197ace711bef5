/* The HTTP request path: what the fake gateway reads from clients. */
#define FUZZ_KIND GM_HTTP_REQUEST
#define FUZZ_HEADER "sec-websocket-key"
#include "include/http_target.h"
