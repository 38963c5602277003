/** @jsxImportSource hono/jsx */
import { Csrf, Layout, type PageContext } from "../layout.tsx";
import type { NotificationsView } from "../notifications.ts";

export function NotificationsPage(
  props: { ctx: PageContext; view: NotificationsView; canTest: boolean },
) {
  const v = props.view;
  return (
    <Layout title="Notifications" ctx={props.ctx}>
      {!v.configured ? <p class="not-configured">Not configured. {v.reason}</p> : (
        <>
          <h2>Channels</h2>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Events</th>
                  <th scope="col">Deliveries</th>
                  <th scope="col">Test</th>
                </tr>
              </thead>
              <tbody>
                {v.channels.map((ch) => (
                  <tr>
                    <td>{ch.name}</td>
                    <td>{ch.kind}</td>
                    <td>{ch.events.join(", ")}</td>
                    <td>
                      {Object.entries(ch.deliveries).map(([state, n]) => `${state} ${n}`).join(
                        ", ",
                      )}
                    </td>
                    <td>
                      {props.canTest && (
                        <form class="inline" method="post" action="/ui/notifications/test">
                          <Csrf token={props.ctx.csrf} />
                          <input type="hidden" name="channel" value={ch.name} />
                          <button type="submit">Send test</button>
                        </form>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h2>Recent deliveries</h2>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Channel</th>
                  <th scope="col">Event</th>
                  <th scope="col">State</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">At</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {v.deliveries.map((d) => (
                  <tr>
                    <td>{d.channel}</td>
                    <td>{d.event}</td>
                    <td>{d.state}</td>
                    <td>{d.attempts}</td>
                    <td>{d.at ?? "–"}</td>
                    <td>{d.error ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </Layout>
  );
}
