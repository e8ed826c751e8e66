-- json_group_object and json_group_array on PostgreSQL's own C aggregate steps (jsonb_object_agg's
-- and jsonb_agg's) instead of SQL-language steps: a SQL function as an aggregate's step is run by
-- the SQL function executor for every row and once more to finish, about 10 microseconds a call
-- more, and a model's or a version's row carries two or three of these. The answers are the same
-- JSON (jsonb, as before: keys sorted, a repeated key's last value), except that no rows give NULL
-- instead of '{}' or '[]'; the registry reads both as empty.
DROP AGGREGATE json_group_object(text, text);
DROP AGGREGATE json_group_array(text);
DROP FUNCTION mk_json_object_step(jsonb, text, text);
DROP FUNCTION mk_json_array_step(jsonb, text);
DROP FUNCTION mk_json_text(jsonb);
CREATE AGGREGATE json_group_object(text, text) (
    SFUNC = jsonb_object_agg_transfn, STYPE = internal, FINALFUNC = jsonb_object_agg_finalfn);
CREATE AGGREGATE json_group_array(text) (
    SFUNC = jsonb_agg_transfn, STYPE = internal, FINALFUNC = jsonb_agg_finalfn);
