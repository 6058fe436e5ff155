-- Our cost estimate per job against CUR 2.0 split cost allocation data, task by task (docs/cost.md).
--
-- Athena (Trino). Replace before running: ${database} (the batchops Glue database), ${cur_table} (the CUR 2.0
-- Data Export table, split cost allocation data included), ${start} and ${end} (ISO-8601 instants, end excluded).
-- Each attempt of a Batch job is one ECS task: CUR's split line items name it in line_item_resource_id, so attempts
-- join on task_arn. CUR's split cost is the task's vCPU and memory at the instance's 9:1 unit costs; its unused cost is
-- its part of the instance's idle capacity. Fargate tasks' own line items carry their cost.
WITH cur_tasks AS (
    SELECT
        line_item_resource_id AS task_arn,
        sum(coalesce(split_line_item_split_cost, line_item_unblended_cost)) AS cur_split_cost_usd,
        sum(coalesce(split_line_item_unused_cost, 0)) AS cur_unused_cost_usd,
        sum(split_line_item_public_on_demand_split_cost) AS cur_public_on_demand_split_cost_usd,
        max(split_line_item_parent_resource_id) AS cur_instance_id
    FROM ${cur_table}
    WHERE billing_period BETWEEN substr('${start}', 1, 7) AND substr('${end}', 1, 7)
        AND line_item_usage_start_date >= from_iso8601_timestamp('${start}')
        AND line_item_usage_start_date < from_iso8601_timestamp('${end}')
        AND line_item_product_code = 'AmazonECS'
        AND line_item_line_item_type = 'Usage'
        AND line_item_resource_id LIKE 'arn:aws:ecs:%:task/%'
    GROUP BY line_item_resource_id
),
attempts AS (
    SELECT
        a.account_id,
        a.region,
        a.job_id,
        a.task_arn,
        a.cost_usd,
        c.cur_split_cost_usd,
        c.cur_unused_cost_usd,
        c.cur_public_on_demand_split_cost_usd
    FROM "${database}"."job_attempts" AS a
    LEFT JOIN cur_tasks AS c ON c.task_arn = a.task_arn
    WHERE a.task_arn IS NOT NULL
        AND a.started_at >= '${start}'
        AND a.started_at < '${end}'
)
SELECT
    j.account_id,
    j.region,
    j.job_id,
    j.job_name,
    j.queue,
    j.compute_environment,
    j.platform,
    j.pricing,
    count(*) AS attempts,
    count(t.cur_split_cost_usd) AS attempts_in_cur,
    -- null when any attempt's estimate is unknown: a partial sum would look like a real difference
    CASE WHEN count(t.cost_usd) = count(*) THEN sum(t.cost_usd) END AS estimated_cost_usd,
    sum(t.cur_split_cost_usd) AS cur_split_cost_usd,
    sum(t.cur_unused_cost_usd) AS cur_unused_cost_usd,
    sum(t.cur_split_cost_usd) + sum(t.cur_unused_cost_usd) AS cur_split_and_unused_cost_usd,
    sum(t.cur_public_on_demand_split_cost_usd) AS cur_public_on_demand_split_cost_usd,
    CASE
        WHEN count(t.cost_usd) = count(*) AND sum(t.cur_split_cost_usd) > 0
            THEN sum(t.cost_usd) / sum(t.cur_split_cost_usd)
    END AS estimate_to_split_ratio
FROM attempts AS t
JOIN "${database}"."jobs" AS j
    ON j.account_id = t.account_id AND j.region = t.region AND j.job_id = t.job_id
GROUP BY j.account_id, j.region, j.job_id, j.job_name, j.queue, j.compute_environment, j.platform, j.pricing
ORDER BY cur_split_cost_usd DESC NULLS LAST, j.account_id, j.region, j.job_id
