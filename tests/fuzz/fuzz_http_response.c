/* The HTTP response path: upgrade answers and REST responses. */
#define FUZZ_KIND GM_HTTP_RESPONSE
#define FUZZ_HEADER "sec-websocket-accept"
#include "include/http_target.h"
