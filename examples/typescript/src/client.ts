// Registers a device, publishes to it and watches the message to the end.
// Usage: PUSHHUB_SERVER_KEY=phs_… [PUSHHUB_ADDRESS=127.0.0.1:50051] npm start
import { randomUUID } from "node:crypto";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { MessageState, Platform } from "./gen/pushhub/v1/common_pb.js";
import { PublishService } from "./gen/pushhub/v1/publish_pb.js";
import { DeviceRegistrationService } from "./gen/pushhub/v1/registration_pb.js";
import { StatusService } from "./gen/pushhub/v1/status_pb.js";

const address = process.env.PUSHHUB_ADDRESS ?? "127.0.0.1:50051";
const serverKey = process.env.PUSHHUB_SERVER_KEY;
if (!serverKey) throw new Error("set PUSHHUB_SERVER_KEY to the app's server key (phs_…)");

// Every call carries the app's server key.
const withKey: Interceptor = (next) => (request) => {
  request.header.set("authorization", `Bearer ${serverKey}`);
  return next(request);
};
const transport = createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [withKey] });

const registered = await createClient(DeviceRegistrationService, transport).registerDevice({
  platform: Platform.FCM,
  deviceToken: `example-ts-${randomUUID()}`,
  channels: ["examples"],
});
const registrationId = registered.registration!.registrationId;
console.log(`registered ${registrationId}`);

const published = await createClient(PublishService, transport).publish({
  registrationIds: [registrationId],
  notification: { title: "Hello", body: "from TypeScript" },
});
console.log(`published ${published.messageId}`);

// The stream sends the status each time it changes and ends at a terminal state.
const watch = createClient(StatusService, transport).watchMessageStatus({
  messageId: published.messageId,
});
for await (const { status } of watch) {
  console.log(`${MessageState[status!.state]} sent=${status!.sentCount} failed=${status!.failedCount}`);
}
