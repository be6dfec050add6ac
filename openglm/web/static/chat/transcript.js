// One assistant turn built from stream chunks — plain chat completions, glm-4-alltools and the Assistant API
// all fit: text deltas, a built-in tool's `input` fragments, then a `role: "tool"` chunk with its `outputs`.
// Pure data, no DOM: the renderer draws what this holds.

export function newTurn() {
  return { role: 'assistant', parts: [], status: 'streaming', usage: null, citations: [], error: '', ids: {} };
}

function lastPart(turn) {
  return turn.parts[turn.parts.length - 1];
}

function addText(turn, text) {
  const last = lastPart(turn);
  if (last && last.kind === 'text') last.text += text;
  else turn.parts.push({ kind: 'text', text });
}

function newCall(turn, type, id) {
  const part = { kind: 'tool', type, id: id || '', input: '', name: '', arguments: '', outputs: null };
  turn.parts.push(part);
  return part;
}

// Where a call's input goes. glm-4-alltools streams it in fragments under one call id (role "assistant"); the
// Assistant API sends each call whole, without an id, in a role "tool" chunk — so that is always a new call.
function inputPart(turn, type, id, role) {
  if (role !== 'tool') {
    for (let i = turn.parts.length - 1; i >= 0; i--) {
      const part = turn.parts[i];
      if (part.kind === 'tool' && part.type === type && !part.outputs && part.id === (id || '')) return part;
      if (part.kind === 'tool' && id) continue; // calls of one round interleave by id
      break;
    }
  }
  return newCall(turn, type, id);
}

// Outputs carry no id: they answer the calls of their type in order, the earliest still waiting first.
function outputPart(turn, type) {
  return turn.parts.find((part) => part.kind === 'tool' && part.type === type && !part.outputs) || newCall(turn, type, '');
}

function addToolDelta(turn, call, role) {
  const type = call.type || 'function';
  const body = call[type] || {};
  const hasInput = typeof body.input === 'string' || body.name || typeof body.arguments === 'string';
  if (hasInput) {
    const part = inputPart(turn, type, call.id, role);
    if (typeof body.input === 'string') part.input += body.input;
    if (body.name) part.name = body.name;
    if (typeof body.arguments === 'string' && body.arguments) {
      // glm-4-alltools repeats empty arguments and sends them whole at the end
      part.arguments = body.arguments.startsWith(part.arguments) ? body.arguments : part.arguments + body.arguments;
    }
  }
  if (Array.isArray(body.outputs)) {
    const part = outputPart(turn, type);
    part.outputs = [...(part.outputs || []), ...body.outputs];
  }
}

export function applyChunk(turn, chunk) {
  if (chunk.error) {
    turn.error = chunk.error.message || 'the stream failed';
    turn.status = 'failed';
    return turn;
  }
  for (const key of ['id', 'conversation_id', 'assistant_id']) if (chunk[key]) turn.ids[key] = chunk[key];
  if (Array.isArray(chunk.retrieval)) turn.citations = chunk.retrieval;
  if (chunk.usage) turn.usage = chunk.usage;
  const choice = (chunk.choices || [])[0];
  if (choice) {
    const delta = choice.delta || {};
    if (delta.tool_calls) for (const call of delta.tool_calls) addToolDelta(turn, call, delta.role);
    if (typeof delta.content === 'string' && delta.content) addText(turn, delta.content);
    if (choice.finish_reason) turn.finish = choice.finish_reason;
  }
  if (chunk.status && chunk.status !== 'in_process' && chunk.status !== 'in_progress') turn.status = chunk.status;
  if (chunk.last_error && chunk.last_error.message) turn.error = chunk.last_error.message;
  return turn;
}

export function finish(turn) {
  if (turn.status === 'streaming') turn.status = turn.error ? 'failed' : 'completed';
  return turn;
}

export function turnText(turn) {
  return turn.parts
    .filter((part) => part.kind === 'text')
    .map((part) => part.text)
    .join('');
}
