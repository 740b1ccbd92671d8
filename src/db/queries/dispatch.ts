// SQL for the dispatcher (gw_dispatcher). Every statement parameterised.

/** All destinations, every set: the dispatcher filters by state itself (disabled rows are kept to show and re-enable). */
export const SELECT_DISPATCHER = `SELECT id, setid, destination, state, weight, priority, attrs, description
  FROM gw_dispatcher ORDER BY setid, id`;

/** Persist an administrative state (optional; runtime state changes are not written back). */
export const UPDATE_DISPATCHER_STATE = 'UPDATE gw_dispatcher SET state = ? WHERE id = ?';
