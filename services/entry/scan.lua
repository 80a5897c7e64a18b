-- One gate scan, decided and applied atomically in one round trip (docs/entry.md).
-- KEYS[1] nonce result      entry:nonce:<gate_id>:<nonce>      string
-- KEYS[2] credential record the key the medium names (cred:<id>, cred:code:<CODE>,
--                           cred:id:venue:<venue>:<day>:<id_hash>): booking's JSON, or
--                           "-" (booking knows no such credential); "" when ARGV[1] ~= "ok"
-- KEYS[3] venue today       entry:occ:<venue_id>:<day>         hash inside, admitted, fresh
-- Not in KEYS: the credential's state hash ARGV[9] .. <record.credential_id>
-- (hash in, out, rev, seeded). Its name is known only once the record is read,
-- which is fine on one Redis primary; a cluster would need one hash tag for all.
-- ARGV[1] "ok", or the refusal already decided in Python (tampered, expired_code, unknown)
-- ARGV[2] direction in|out   ARGV[3] the venue's policy (when the record has none)
-- ARGV[4] instantaneous cap  ARGV[5] daily cap (0 = none)
-- ARGV[6] nonce ttl s        ARGV[7] state ttl s
-- ARGV[8] the gate's venue id ARGV[9] state key prefix ("<prefix>entry:cred:")
-- ARGV[10] "1" if the gate's venue is configured (else entries are 'blocked')
-- ARGV[11] the scan's city date YYYY-MM-DD   ARGV[12] its city time of day, seconds
-- ARGV[13] "1" to seed missing state from ARGV[14..19]: in, out, rev, inside, admitted,
--          fresh ("1": the database had nothing for this venue-day)
-- Returns {"norecord"} (the record key is missing: nothing was changed)
--       | {"replay", answer, record} | {"miss", record}
--       | {"new", answer, inside_before, inside_after, record}
-- answer = "decision|reason|person_no|delta_inside|delta_admitted"; record is
-- KEYS[2]'s text as read (false when not read). The time is always the caller's:
-- this script never reads the clock.
local nonce_ttl = tonumber(ARGV[6])
if ARGV[1] ~= 'ok' then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {'replay', prior} end
  local answer = 'deny|' .. ARGV[1] .. '|0|0|0'
  redis.call('SET', KEYS[1], answer, 'EX', nonce_ttl)
  return {'new', answer, '0', '0'}
end
local raw = redis.call('GET', KEYS[2])
if not raw then return {'norecord'} end
local prior = redis.call('GET', KEYS[1])
if prior then return {'replay', prior, raw} end

local function refuse(reason)
  local answer = 'deny|' .. reason .. '|0|0|0'
  redis.call('SET', KEYS[1], answer, 'EX', nonce_ttl)
  return {'new', answer, '0', '0', raw}
end

local function text(value)  -- a JSON string field, or nil for null/absent/""
  if type(value) == 'string' and value ~= '' then return value end
  return nil
end

local function minutes(hhmm)  -- "HH:MM" -> minutes after midnight
  local h, m = string.match(hhmm, '^(%d+):(%d+)$')
  return tonumber(h) * 60 + tonumber(m)
end

-- The ticket rules (the reference is rules.check_ticket), in its order.
if raw == '-' then return refuse('unknown') end
local rec = cjson.decode(raw)
local direction = ARGV[2]
if rec.target_type ~= 'venue' or rec.target_id ~= ARGV[8] then return refuse('wrong_venue') end
if direction ~= 'out' then
  if rec.status ~= 'active' then return refuse('cancelled') end
  -- ISO dates compare as strings
  if ARGV[11] < rec.valid_from then return refuse('not_yet_valid') end
  if ARGV[11] > rec.valid_until then return refuse('expired') end
  local now = tonumber(ARGV[12])
  -- a timed ticket opens rules.EARLY_ENTRY (30 minutes) before its slot
  if text(rec.slot_start) and now < (minutes(rec.slot_start) - 30) * 60 then
    return refuse('not_yet_valid')
  end
  if text(rec.slot_end) and now > minutes(rec.slot_end) * 60 then return refuse('expired') end
  if ARGV[10] ~= '1' then return refuse('blocked') end
end

-- The live state (the reference is rules.check_state).
local cred_key = ARGV[9] .. rec.credential_id
if ARGV[13] == '1' then
  if redis.call('HEXISTS', cred_key, 'seeded') == 0 then
    redis.call('HSET', cred_key, 'in', ARGV[14], 'out', ARGV[15], 'seeded', '1')
    if ARGV[16] ~= '' then redis.call('HSETNX', cred_key, 'rev', ARGV[16]) end
  end
  if redis.call('HEXISTS', KEYS[3], 'inside') == 0 then
    redis.call('HSET', KEYS[3], 'inside', ARGV[17], 'admitted', ARGV[18], 'fresh', ARGV[19])
  end
end
if redis.call('HEXISTS', KEYS[3], 'inside') == 0 then return {'miss', raw} end
if redis.call('HEXISTS', cred_key, 'seeded') == 0 then
  -- 'fresh': this venue-day's state was built when the database held no scan
  -- and no revocation for it, so a credential without state was never scanned
  -- (a revocation arriving since is already in the hash as 'rev')
  if redis.call('HGET', KEYS[3], 'fresh') ~= '1' then return {'miss', raw} end
  redis.call('HSET', cred_key, 'in', 0, 'out', 0, 'seeded', '1')
end
local state_ttl = tonumber(ARGV[7])
redis.call('EXPIRE', cred_key, state_ttl)
redis.call('EXPIRE', KEYS[3], state_ttl)
local cred = redis.call('HMGET', cred_key, 'in', 'out', 'rev')
local n_in, n_out, rev = tonumber(cred[1]), tonumber(cred[2]), cred[3]
local occ = redis.call('HMGET', KEYS[3], 'inside', 'admitted')
local inside, admitted = tonumber(occ[1]), tonumber(occ[2])

local function finish(answer, after)
  redis.call('SET', KEYS[1], answer, 'EX', nonce_ttl)
  return {'new', answer, tostring(inside), tostring(after), raw}
end

if direction == 'out' then
  -- an exit always opens; it counts only if this ticket is inside
  if n_in - n_out > 0 then
    redis.call('HINCRBY', cred_key, 'out', 1)
    local after = inside - 1
    if after < 0 then after = 0 end
    redis.call('HSET', KEYS[3], 'inside', after)
    return finish('admit|ok|0|-1|0', after)
  end
  return finish('admit|ok|0|0|0', inside)
end

if rev then return finish('deny|' .. rev .. '|0|0|0', inside) end
local party = tonumber(rec.party_size) or 0
if party == 0 then party = 1 end
local policy = text(rec.entry_policy) or text(ARGV[3]) or 'single'
if policy == 'multi' then
  if n_in - n_out >= party then return finish('deny|not_exited|0|0|0', inside) end
elseif n_in >= party then
  return finish('deny|already_used|0|0|0', inside)
end
local first = 0
if n_in < party then first = 1 end
local cap, daily = tonumber(ARGV[4]), tonumber(ARGV[5])
if cap > 0 and inside + 1 > cap then return finish('deny|capacity_full|0|0|0', inside) end
if first == 1 and daily > 0 and admitted + 1 > daily then
  return finish('deny|capacity_full|0|0|0', inside)
end
redis.call('HINCRBY', cred_key, 'in', 1)
redis.call('HINCRBY', KEYS[3], 'inside', 1)
if first == 1 then redis.call('HINCRBY', KEYS[3], 'admitted', 1) end
local person = 0
if policy ~= 'multi' then person = n_in + 1 end
return finish('admit|ok|' .. person .. '|1|' .. first, inside + 1)
