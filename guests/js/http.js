// Makes one outbound HTTP request (world warden:plugin/transformer@0.2.0): the input is
// `URL` or `METHOD URL`; the output is `STATUS` and the response body on the next line.
// Warden grants no network by default: the tests grant an allow-list and check what the host
// lets through.
export async function transform(input) {
  const text = new TextDecoder().decode(input).trim();
  const [first, second] = text.split(/\s+/);
  const [method, url] = second ? [first, second] : ['GET', first];
  let response;
  try {
    response = await fetch(url, { method, redirect: 'follow' });
  } catch (error) {
    throw `fetch failed: ${error}`;
  }
  let body;
  try {
    body = await response.text();
  } catch (error) {
    throw `reading the body failed: ${error}`;
  }
  return new TextEncoder().encode(`${response.status}\n${body}`);
}
