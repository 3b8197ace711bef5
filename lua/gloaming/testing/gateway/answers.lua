--- Discord's error answers, and reading a JSON body, for the fake's REST
-- routes: each returns status, body (a table, or nil for none).
local json = require "gloaming.json"

local answers = {}

-- Discord's answers to the mistakes the fake checks: name -> status, body.
local ERRORS = {
  unauthorized = { 401, { message = "401: Unauthorized", code = 0 } },
  not_found = { 404, { message = "404: Not Found", code = 0 } },
  method_not_allowed = { 405, { message = "405: Method Not Allowed", code = 0 } },
  invalid_json = { 400, { message = "The request body contains invalid JSON.", code = 50109 } },
  empty_message = { 400, { message = "Cannot send an empty message", code = 50006 } },
  unknown_channel = { 404, { message = "Unknown Channel", code = 10003 } },
  unknown_message = { 404, { message = "Unknown Message", code = 10008 } },
  unknown_emoji = { 400, { message = "Unknown Emoji", code = 10014 } },
  unknown_webhook = { 404, { message = "Unknown Webhook", code = 10015 } },
  unknown_command = { 404, { message = "Unknown application command", code = 10063 } },
  unknown_interaction = { 404, { message = "Unknown interaction", code = 10062 } },
  acknowledged = { 400, { message = "Interaction has already been acknowledged.", code = 40060 } },
  not_author = { 403, { message = "Cannot edit a message authored by another user", code = 50005 } },
  missing_access = { 403, { message = "Missing Access", code = 50001 } },
}

function answers.fail(name)
  local e = ERRORS[name]
  return e[1], e[2]
end

--- 400 Invalid Form Body, with the field's error as Discord nests it;
-- field is a key, or a list of keys ({ "0", "name" }: the first item's name).
function answers.invalid_form(field, code, message)
  local path = type(field) == "table" and field or { field }
  local errors = { _errors = json.array { { code = code, message = message } } }
  for i = #path, 1, -1 do errors = { [path[i]] = errors } end
  return 400, { message = "Invalid Form Body", code = 50035, errors = errors }
end

function answers.is_json(req)
  return (req.headers["content-type"] or ""):lower():match("^application/json") ~= nil
end

--- The request's JSON body as a table, or nil, status, body to answer.
-- A body that is not JSON is read as a form without fields (empty).
function answers.json_body(req)
  if not answers.is_json(req) then return {} end
  local body = json.decode(req.body)
  if type(body) ~= "table" then return nil, answers.fail("invalid_json") end
  return body
end

return answers
